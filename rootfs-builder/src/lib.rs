//! Builds Hull guest images: merges and verifies kernel configs, assembles the rootfs
//! tree, writes the initrd and the disk image, and describes them in a manifest.
