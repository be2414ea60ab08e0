//! # pause_image — Berth's own pause image, built without any registry
//!
//! An awsvpc task's network namespace is held by a pause container (as with the ECS agent).
//! Unless the operator names an image (`--pause-image`), the agent makes [`BUILTIN_PAUSE_IMAGE`]
//! itself: [`rootfs_tar`] is an in-memory tar holding one file, `/pause`, a static ELF
//! executable assembled by hand ([`pause_elf`]: 178 bytes on x86_64, 196 on aarch64), which the runtime imports
//! (Docker's `POST /images/create?fromSrc=-`, i.e. `docker import`) with `CMD ["/pause"]`.
//!
//! The program blocks SIGINT and SIGTERM and waits for one of them with `rt_sigtimedwait(2)`,
//! then exits 0. (A `pause(2)` loop would never see `docker stop`'s SIGTERM: PID 1 of a PID
//! namespace does not get signals it has no handler for, so every task stop would wait for
//! the SIGKILL; a blocked signal is still delivered to `sigtimedwait`.)
//!
//! The same program exists for aarch64. Other CPU architectures: [`pause_elf`] returns `None`, and the runtime says so, naming
//! `--pause-image` (any image whose command blocks until SIGTERM works, e.g. Kubernetes'
//! `registry.k8s.io/pause`).

/// The image the agent builds when it needs a pause container and no `--pause-image` is given.
pub const BUILTIN_PAUSE_IMAGE: &str = "berth/pause:1";

/// Load address of the single segment (the classic non-PIE base).
const BASE: u64 = 0x40_0000;
/// ELF header (64 bytes) + one program header (56 bytes); the code follows.
const CODE_OFFSET: u64 = 64 + 56;

/// The program, x86_64 (Intel syntax; `as` + `objdump -d` give exactly these bytes):
///
/// ```text
///  0: 68 02 40 00 00        push  0x4002        ; sigset on the stack: bit 1 SIGINT, bit 14 SIGTERM
///  5: 48 89 e6              mov   rsi, rsp      ; set
///  8: 31 ff                 xor   edi, edi      ; how = SIG_BLOCK
///  a: 31 d2                 xor   edx, edx      ; oldset = NULL
///  c: 41 ba 08 00 00 00     mov   r10d, 8       ; sigsetsize
/// 12: b8 0e 00 00 00        mov   eax, 14       ; rt_sigprocmask
/// 17: 0f 05                 syscall
/// 19: 48 89 e7         wait: mov  rdi, rsp      ; set
/// 1c: 31 f6                 xor   esi, esi      ; info = NULL
/// 1e: 31 d2                 xor   edx, edx      ; timeout = NULL: forever
/// 20: 41 ba 08 00 00 00     mov   r10d, 8       ; sigsetsize
/// 26: b8 80 00 00 00        mov   eax, 128      ; rt_sigtimedwait
/// 2b: 0f 05                 syscall
/// 2d: 85 c0                 test  eax, eax
/// 2f: 78 e8                 js    wait          ; -EINTR and the like: wait again
/// 31: 31 ff                 xor   edi, edi      ; status 0
/// 33: b8 e7 00 00 00        mov   eax, 231      ; exit_group
/// 38: 0f 05                 syscall
/// ```
const X86_64_CODE: [u8; 58] = [
    0x68, 0x02, 0x40, 0x00, 0x00, //
    0x48, 0x89, 0xe6, //
    0x31, 0xff, //
    0x31, 0xd2, //
    0x41, 0xba, 0x08, 0x00, 0x00, 0x00, //
    0xb8, 0x0e, 0x00, 0x00, 0x00, //
    0x0f, 0x05, //
    0x48, 0x89, 0xe7, //
    0x31, 0xf6, //
    0x31, 0xd2, //
    0x41, 0xba, 0x08, 0x00, 0x00, 0x00, //
    0xb8, 0x80, 0x00, 0x00, 0x00, //
    0x0f, 0x05, //
    0x85, 0xc0, //
    0x78, 0xe8, //
    0x31, 0xff, //
    0xb8, 0xe7, 0x00, 0x00, 0x00, //
    0x0f, 0x05,
];

/// The same program for aarch64 (`aarch64-linux-gnu-as` + `objdump -d`; checked under
/// `qemu-aarch64`: it blocks, and exits 0 on SIGTERM). Little-endian instruction words:
///
/// ```text
///  0: d10043ff        sub   sp, sp, #16
///  4: d2880041        mov   x1, #0x4002     ; sigset: SIGINT | SIGTERM
///  8: f90003e1        str   x1, [sp]
///  c: d2800000        mov   x0, #0          ; SIG_BLOCK
/// 10: 910003e1        mov   x1, sp          ; set
/// 14: d2800002        mov   x2, #0          ; oldset = NULL
/// 18: d2800103        mov   x3, #8          ; sigsetsize
/// 1c: d28010e8        mov   x8, #135        ; rt_sigprocmask
/// 20: d4000001        svc   #0
/// 24: 910003e0  wait: mov   x0, sp          ; set
/// 28: d2800001        mov   x1, #0          ; info = NULL
/// 2c: d2800002        mov   x2, #0          ; timeout = NULL: forever
/// 30: d2800103        mov   x3, #8
/// 34: d2801128        mov   x8, #137        ; rt_sigtimedwait
/// 38: d4000001        svc   #0
/// 3c: b7ffff40        tbnz  x0, #63, wait   ; negative (-EINTR…): wait again
/// 40: d2800000        mov   x0, #0          ; status 0
/// 44: d2800bc8        mov   x8, #94         ; exit_group
/// 48: d4000001        svc   #0
/// ```
const AARCH64_CODE: [u32; 19] = [
    0xd10043ff, 0xd2880041, 0xf90003e1, 0xd2800000, 0x910003e1, 0xd2800002, 0xd2800103, 0xd28010e8,
    0xd4000001, 0x910003e0, 0xd2800001, 0xd2800002, 0xd2800103, 0xd2801128, 0xd4000001, 0xb7ffff40,
    0xd2800000, 0xd2800bc8, 0xd4000001,
];

/// `EM_X86_64`.
const EM_X86_64: u16 = 62;
/// `EM_AARCH64`.
const EM_AARCH64: u16 = 183;

/// The pause executable for `arch` (`std::env::consts::ARCH`), or `None` where Berth has none.
pub fn pause_elf(arch: &str) -> Option<Vec<u8>> {
    let aarch64: Vec<u8> = AARCH64_CODE.iter().flat_map(|w| w.to_le_bytes()).collect();
    let (machine, code): (u16, &[u8]) = match arch {
        "x86_64" => (EM_X86_64, &X86_64_CODE),
        "aarch64" => (EM_AARCH64, &aarch64),
        _ => return None,
    };
    let total = CODE_OFFSET + code.len() as u64;
    let mut f = Vec::with_capacity(total as usize);
    // ELF header.
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F']);
    f.extend_from_slice(&[2, 1, 1, 0]); // ELFCLASS64, little endian, version 1, System V ABI
    f.extend_from_slice(&[0; 8]); // ABI version + padding
    f.extend_from_slice(&2u16.to_le_bytes()); // e_type ET_EXEC
    f.extend_from_slice(&machine.to_le_bytes()); // e_machine
    f.extend_from_slice(&1u32.to_le_bytes()); // e_version
    f.extend_from_slice(&(BASE + CODE_OFFSET).to_le_bytes()); // e_entry
    f.extend_from_slice(&64u64.to_le_bytes()); // e_phoff: right after this header
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no section headers
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    f.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    f.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    f.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    f.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    f.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    f.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    // Program header: one PT_LOAD, read + execute, mapping the whole file at BASE.
    f.extend_from_slice(&1u32.to_le_bytes()); // p_type PT_LOAD
    f.extend_from_slice(&5u32.to_le_bytes()); // p_flags PF_R | PF_X
    f.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    f.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    f.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    f.extend_from_slice(&total.to_le_bytes()); // p_filesz
    f.extend_from_slice(&total.to_le_bytes()); // p_memsz
    f.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    f.extend_from_slice(code);
    Some(f)
}

/// A root filesystem tar with `/pause` (mode 0755) for `docker import`; `None` where
/// [`pause_elf`] has no program for `arch`.
pub fn rootfs_tar(arch: &str) -> Option<Result<Vec<u8>, std::io::Error>> {
    let elf = pause_elf(arch)?;
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(elf.len() as u64);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    Some(
        builder
            .append_data(&mut header, "pause", elf.as_slice())
            .and_then(|()| builder.into_inner()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_elf_is_a_static_x86_64_executable_entering_at_its_code() {
        let f = pause_elf("x86_64").unwrap();
        assert_eq!(f.len(), 178);
        assert_eq!(&f[..4], b"\x7fELF");
        assert_eq!(u16::from_le_bytes([f[18], f[19]]), EM_X86_64);
        let entry = u64::from_le_bytes(f[24..32].try_into().unwrap());
        assert_eq!(entry, BASE + 120);
        assert_eq!(&f[120..], &X86_64_CODE);
        let a = pause_elf("aarch64").unwrap();
        assert_eq!((a.len(), u16::from_le_bytes([a[18], a[19]])), (196, EM_AARCH64));
        assert_eq!(&a[120..128], &[0xff, 0x43, 0x00, 0xd1, 0x41, 0x00, 0x88, 0xd2]);
        // Same layout as x86_64 but for e_machine and the segment sizes.
        let mut header = f[..120].to_vec();
        header[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        header[96..104].copy_from_slice(&196u64.to_le_bytes());
        header[104..112].copy_from_slice(&196u64.to_le_bytes());
        assert_eq!(&a[..120], &header[..]);
        assert_eq!(pause_elf("mips"), None);
        assert!(rootfs_tar("riscv64").is_none());
    }

    #[test]
    fn the_tar_holds_only_the_executable_pause() {
        let bytes = rootfs_tar("x86_64").unwrap().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (e.path().unwrap().display().to_string(), h.mode().unwrap(), h.size().unwrap())
            })
            .collect();
        assert_eq!(entries, [("pause".to_string(), 0o755, 178)]);
    }

    /// Runs the program on this machine: it must block until SIGTERM, then exit 0.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn the_program_blocks_until_sigterm_then_exits_zero() {
        use std::os::unix::fs::PermissionsExt;
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pause");
        std::fs::write(&path, pause_elf("x86_64").unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut child = std::process::Command::new(&path).spawn().unwrap();
        // It must still run a while later (it blocks rather than exits at once).
        std::thread::sleep(Duration::from_millis(200));
        assert!(child.try_wait().unwrap().is_none(), "pause exited without a signal");
        let pid = child.id().to_string();
        let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "pause ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.code(), Some(0), "exits 0 on SIGTERM: {status:?}");
    }
}
