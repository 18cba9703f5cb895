//! Probes whether KVM really works on this host.
//!
//! The device node alone proves nothing: on some hosts `/dev/kvm` belongs to a
//! para-virtualised KVM module on which ordinary guests abort or hang. The probe
//! therefore creates a VM and a vCPU and, on x86_64, runs three real-mode
//! instructions placed at the reset vector (`mov al, 0x42; out 0x10, al; hlt`) and
//! checks that the vCPU exits with that port write.
//!
//! Limitations: the instruction run is implemented for x86_64 only; on other
//! architectures the probe stops after creating the vCPU. A vCPU that never exits
//! is abandoned in a helper thread after [`RUN_TIMEOUT`]; the thread ends with the
//! process.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where the KVM device lives.
pub const KVM_DEVICE: &str = "/dev/kvm";

/// How long the test vCPU may run before the probe gives up on it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(2);

/// A run slower than this means guest instructions are being emulated. Native
/// execution of the probe's 512 KiB fill takes well under a millisecond, a
/// nested hypervisor a few; the para-virtualised KVM seen on some build hosts
/// takes about 150 ms and cannot boot a kernel in useful time.
pub const SLOW_RUN: Duration = Duration::from_millis(50);

const KVM_API_VERSION: i32 = 12;
const KVMIO: u64 = 0xAE;

/// `_IO(KVMIO, nr)`.
const fn io(nr: u64) -> u64 {
    (KVMIO << 8) | nr
}

/// `_IOW(KVMIO, nr, size)`.
const fn iow(nr: u64, size: u64) -> u64 {
    (1 << 30) | (size << 16) | (KVMIO << 8) | nr
}

const KVM_GET_API_VERSION: u64 = io(0x00);
const KVM_CREATE_VM: u64 = io(0x01);
const KVM_GET_VCPU_MMAP_SIZE: u64 = io(0x04);
const KVM_CREATE_VCPU: u64 = io(0x41);
const KVM_SET_USER_MEMORY_REGION: u64 = iow(0x46, 32);
const KVM_RUN: u64 = io(0x80);

const KVM_EXIT_IO: u32 = 2;
const PROBE_PORT: u16 = 0x10;
const PROBE_VALUE: u8 = 0x42;

/// Why KVM cannot be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KvmError {
    /// The device node is missing.
    #[error("{KVM_DEVICE} does not exist")]
    NoDevice,
    /// The device node cannot be opened.
    #[error("cannot open {KVM_DEVICE}: {0}")]
    Open(String),
    /// An ioctl failed.
    #[error("{step} failed: {errno}")]
    Ioctl { step: &'static str, errno: String },
    /// The kernel speaks another KVM API.
    #[error("unexpected KVM API version {0}")]
    ApiVersion(i32),
    /// The test vCPU exited for another reason than the expected port write.
    #[error("test vCPU exited with reason {reason} instead of a port write")]
    WrongExit { reason: u32 },
    /// The test vCPU ran, but far slower than hardware virtualisation does.
    #[error("test vCPU ran too slowly ({0:?} for a 512 KiB fill): guest code is emulated")]
    Slow(Duration),
    /// The test vCPU never came back.
    #[error("test vCPU did not exit within {0:?}")]
    Hang(Duration),
}

/// Probes KVM; `Ok(())` means QEMU can use `-accel kvm`.
pub fn probe() -> Result<(), KvmError> {
    probe_device(Path::new(KVM_DEVICE))
}

/// Probes the KVM device at `path`.
pub fn probe_device(path: &Path) -> Result<(), KvmError> {
    if !path.exists() {
        return Err(KvmError::NoDevice);
    }
    let kvm = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| KvmError::Open(e.to_string()))?;
    let version = ioctl(
        kvm.as_raw_fd(),
        KVM_GET_API_VERSION,
        0,
        "KVM_GET_API_VERSION",
    )?;
    if version != KVM_API_VERSION {
        return Err(KvmError::ApiVersion(version));
    }
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("kvm-probe".into())
        .spawn(move || {
            // The receiver may be gone after a timeout; nothing to report then.
            let _ = tx.send(run_test_vcpu(&kvm));
        })
        .map_err(|e| KvmError::Ioctl {
            step: "probe thread",
            errno: e.to_string(),
        })?;
    rx.recv_timeout(RUN_TIMEOUT)
        .unwrap_or(Err(KvmError::Hang(RUN_TIMEOUT)))
}

fn run_test_vcpu(kvm: &File) -> Result<(), KvmError> {
    let vm = create_fd(kvm.as_raw_fd(), KVM_CREATE_VM, "KVM_CREATE_VM")?;
    let memory = GuestMemory::new()?;
    memory.register(&vm)?;
    let vcpu = create_fd(vm.as_raw_fd(), KVM_CREATE_VCPU, "KVM_CREATE_VCPU")?;
    run_reset_vector(kvm, &vcpu)
}

/// Runs the vCPU once and checks the exit.
#[cfg(target_arch = "x86_64")]
fn run_reset_vector(kvm: &File, vcpu: &OwnedFd) -> Result<(), KvmError> {
    let size = ioctl(
        kvm.as_raw_fd(),
        KVM_GET_VCPU_MMAP_SIZE,
        0,
        "KVM_GET_VCPU_MMAP_SIZE",
    )?;
    let run = Mapping::new(size as usize, Some(vcpu))?;
    let started = Instant::now();
    ioctl(vcpu.as_raw_fd(), KVM_RUN, 0, "KVM_RUN")?;
    let elapsed = started.elapsed();
    match io_exit(&run) {
        Some((PROBE_PORT, PROBE_VALUE)) if elapsed > SLOW_RUN => Err(KvmError::Slow(elapsed)),
        Some((PROBE_PORT, PROBE_VALUE)) => Ok(()),
        _ => Err(KvmError::WrongExit {
            reason: run.read(8),
        }),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn run_reset_vector(_kvm: &File, _vcpu: &OwnedFd) -> Result<(), KvmError> {
    Ok(())
}

/// The port and first data byte of an I/O exit in a `struct kvm_run`.
#[cfg(target_arch = "x86_64")]
fn io_exit(run: &Mapping) -> Option<(u16, u8)> {
    if run.read::<u32>(8) != KVM_EXIT_IO {
        return None;
    }
    // struct kvm_run.io at offset 32: direction u8, size u8, port u16, count u32,
    // data_offset u64.
    let port: u16 = run.read(34);
    let data_offset: u64 = run.read(40);
    Some((port, run.read(data_offset as usize)))
}

fn ioctl(fd: RawFd, request: u64, arg: u64, step: &'static str) -> Result<i32, KvmError> {
    // SAFETY: every request used here takes either no argument or a pointer to a
    // live, correctly sized struct owned by the caller for the duration of the call.
    let ret = unsafe { libc::ioctl(fd, request as _, arg) };
    if ret < 0 {
        return Err(KvmError::Ioctl {
            step,
            errno: std::io::Error::last_os_error().to_string(),
        });
    }
    Ok(ret)
}

fn create_fd(fd: RawFd, request: u64, step: &'static str) -> Result<OwnedFd, KvmError> {
    let new = ioctl(fd, request, 0, step)?;
    // SAFETY: the ioctl succeeded and returned a fresh file descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

const PAGE: usize = 4096;
/// The page holding the reset vector (physical 0xffff_fff0).
const TOP_PAGE_GPA: u64 = 0xffff_f000;
/// Real-mode memory the probe fills.
const LOW_MEMORY: usize = 1 << 20;

/// The probe program, placed at the start of the top page (CS:0xf000).
const PROBE_CODE: [u8; 29] = [
    0xba,
    0x00,
    0x10, // mov dx, 0x1000
    0x8e,
    0xc2, // outer: mov es, dx
    0x31,
    0xff, // xor di, di
    0xb9,
    0x00,
    0x80, // mov cx, 0x8000
    0x31,
    0xc0, // xor ax, ax
    0xf3,
    0xab, // rep stosw
    0x81,
    0xc2,
    0x00,
    0x10, // add dx, 0x1000
    0x81,
    0xfa,
    0x00,
    0x90, // cmp dx, 0x9000
    0x75,
    0xeb, // jne outer
    0xb0,
    PROBE_VALUE, // mov al, 0x42
    0xe6,
    PROBE_PORT as u8, // out 0x10, al
    0xf4,             // hlt
];

/// `jmp near 0xf000`, placed at the reset vector (CS:0xfff0).
const RESET_JUMP: [u8; 3] = [0xe9, 0x0d, 0xf0];

/// The probe VM's memory: 1 MiB at 0 and the page under 4 GiB with the code.
struct GuestMemory {
    low: Mapping,
    top: Mapping,
}

impl GuestMemory {
    fn new() -> Result<Self, KvmError> {
        let top = Mapping::new(PAGE, None)?;
        top.write(0, &PROBE_CODE);
        top.write(0xff0, &RESET_JUMP);
        let low = Mapping::new(LOW_MEMORY, None)?;
        Ok(Self { low, top })
    }

    fn register(&self, vm: &OwnedFd) -> Result<(), KvmError> {
        set_region(vm, 0, TOP_PAGE_GPA, &self.top)?;
        set_region(vm, 1, 0, &self.low)
    }
}

fn set_region(vm: &OwnedFd, slot: u32, gpa: u64, mem: &Mapping) -> Result<(), KvmError> {
    // struct kvm_userspace_memory_region: slot u32, flags u32, guest_phys_addr,
    // memory_size, userspace_addr (u64 each).
    let region: [u64; 4] = [u64::from(slot), gpa, mem.len as u64, mem.addr as u64];
    let arg = region.as_ptr() as u64;
    ioctl(
        vm.as_raw_fd(),
        KVM_SET_USER_MEMORY_REGION,
        arg,
        "KVM_SET_USER_MEMORY_REGION",
    )?;
    Ok(())
}

/// An mmap'ed region, anonymous or of a file descriptor, unmapped on drop.
struct Mapping {
    addr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize, fd: Option<&OwnedFd>) -> Result<Self, KvmError> {
        let (flags, raw) = match fd {
            Some(fd) => (libc::MAP_SHARED, fd.as_raw_fd()),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: a fresh mapping chosen by the kernel aliases no Rust object; the
        // result is checked against MAP_FAILED.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, raw, 0) };
        if addr == libc::MAP_FAILED {
            return Err(KvmError::Ioctl {
                step: "mmap",
                errno: std::io::Error::last_os_error().to_string(),
            });
        }
        Ok(Self {
            addr: addr.cast(),
            len,
        })
    }

    fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.len);
        // SAFETY: the range lies within the mapping (checked above), which no
        // vCPU runs on yet.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.addr.add(offset), bytes.len())
        };
    }

    #[cfg(target_arch = "x86_64")]
    fn read<T: Copy>(&self, offset: usize) -> T {
        assert!(offset + std::mem::size_of::<T>() <= self.len);
        // SAFETY: the range lies within the mapping (checked above) and the vCPU
        // is stopped, so nothing writes it concurrently.
        unsafe { std::ptr::read_unaligned(self.addr.add(offset).cast::<T>()) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `addr` and `len` come from the successful mmap in `new`.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_is_reported() {
        let err = probe_device(Path::new("/nonexistent/kvm")).unwrap_err();
        assert_eq!(err, KvmError::NoDevice);
    }

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        assert_eq!(KVM_CREATE_VM, 0xae01);
        assert_eq!(KVM_RUN, 0xae80);
        assert_eq!(KVM_SET_USER_MEMORY_REGION, 0x4020_ae46);
    }

    #[test]
    fn a_regular_file_is_not_kvm() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = probe_device(file.path()).unwrap_err();
        assert!(matches!(
            err,
            KvmError::Ioctl {
                step: "KVM_GET_API_VERSION",
                ..
            }
        ));
    }
}
