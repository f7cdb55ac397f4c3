// Package images reads the inputs of a dstack measurement: a dstack metadata.json, the
// directory holding one, a dstack release tarball (.tar.gz, .tgz, .tar, .tar.zst), or
// raw firmware/kernel/initrd files.
//
// A release (built by upstream dstack's os/image/assemble.sh, formerly mkimage.sh) is
// one folder, or in flattened mr_<digest>.tar.gz bundles no folder at all, holding
// ovmf.fd, bzImage, initramfs.cpio.gz, metadata.json naming them, sha256sum.txt
// ("<sha256>  <name>" for the measured files), digest.txt (the SHA-256 of sha256sum.txt,
// the os_image_hash dstack CVMs log in RTMR3), usually measurement.tdx.cbor, and a large
// root filesystem (rootfs.img.parted.verity; older: rootfs.img.verity, rootfs.iso).
//
// Tarballs are read in one streaming pass: every member is hashed as it passes; only
// the small members the measurement needs are kept in memory, the root filesystem is
// hashed and discarded. Every path is checked to stay inside the image, and every size
// is bounded (see Options). Release tarballs are flat: a member in a nested folder, a
// second top-level folder, a link, a device, a duplicate name or a path leaving the
// archive is an error naming the member.
//
// Open returns the same Image (bytes, digests, command line, os_image_hash, checksum
// report) whether a release is given as tarball, directory or metadata.json; only
// Image.Files differs, since in a directory the unlisted root filesystem is not read.
package images
