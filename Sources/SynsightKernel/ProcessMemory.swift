import CSynsightShim

/// How synsight's process uses malloc.
public enum ProcessMemory {
    /// Every thread allocates from the main malloc arena. The BPF programs
    /// are loaded on short-lived threads (BPFObjectSet), where libbpf parses
    /// the kernel's BTF (~10 MB) and frees it; in a per-thread arena those
    /// pages stayed resident (about 18 MB more RSS for the whole run), in
    /// the main arena `malloc_trim` gives them back after start-up. glibc
    /// fixes the arena limit at the first thread's first allocation: call
    /// this first thing in `main`, before any thread exists.
    public static func useOneArena() {
        _ = syn_single_malloc_arena()
        // Start-up's large transient buffers (kallsyms, three parses of the
        // kernel's BTF) go back to the kernel as soon as they are freed,
        // rather than raising the peak RSS while the next one is parsed.
        _ = syn_fixed_mmap_threshold()
    }
}
