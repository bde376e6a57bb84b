/// How long the verifier takes over each program, estimated for
/// BPFObjectSet's shares (the load threads are only as fast as their
/// heaviest share).
///
/// The object's own instruction count (`bpf_program__insn_cnt` before
/// loading) is a poor guide: the verifier walks every path of the inlined
/// helpers, so `on_kfree_skb` (3,912 instructions) takes it 41,298 steps
/// and ~45 ms, while `sc_tp_exit_connect` (2,928) takes 21,375. Balanced
/// by instruction count, the 2-CPU start-up put on_kfree_skb,
/// on_tcp_send_reset and ovf_consume_skb in one share: one thread verified
/// for 260 ms while the other idled after 20.
extension BPFProgram {
    /// `bpf_prog_info.verified_insns` on 6.18 (this repository's host;
    /// `synsight record --log-level debug` logs every program's), for the
    /// programs walked at least twice their instruction count. Kept honest
    /// by ProbePlanKernelTests ("the load shares' weights match what the
    /// verifier walked"). Programs that load only on other kernels (fentry,
    /// kprobe) weigh their instruction count.
    static let verifiedInstructions618: [BPFProgram: Int] = [
        .onKfreeSkb: 36_086, .scTpExitConnect: 13_292, .scTpExitListen: 9_002, .scTpExitBind: 9_002,
        .ovfConsumeSkb: 10_112, .onTcpSendReset: 10_322, .runOvfWatch: 5_824, .onSkErrorReport: 3_630,
        .iterListeners: 2_685,
    ]

    /// The share weight of a program of `instructions` instructions.
    func verifierWeight(instructions: Int) -> Int {
        max(instructions, Self.verifiedInstructions618[self] ?? 0)
    }
}
