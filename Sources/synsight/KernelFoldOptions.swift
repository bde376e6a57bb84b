import ArgumentParser

/// `--no-kernel-fold`, shared by `trace` and `record`.
struct KernelFoldOptions: ParsableArguments {
    @Flag(help: ArgumentHelp(
        "Fold storms in user space only: every no-listener refusal crosses the ring buffer. By default, when storms "
            + "are folded (record --aggregate, trace --fold), the kernel sends the first n refusals per namespace, "
            + "port, CPU and second one by one and only counts the rest, which user space emits as `summary` records."))
    var noKernelFold = false
}
