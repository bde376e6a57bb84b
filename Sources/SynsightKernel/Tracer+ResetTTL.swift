import CLibBPF
import CSynsightABI
import Glibc
import SynsightBase
import SynsightModel

/// Injected resets, armed on anomaly (issue 16's rule: no program per
/// healthy connection). The baseline program (tcp_finish_connect, once per
/// completed outgoing handshake) is loaded with the plan but attached only
/// when a refusing RST's record (SYN_EV_CONNECT_RESET) comes through the ring
/// buffer, and detached after `baselineQuietNs` without one. The reset
/// handler in the kernel put the refusing peer in `rttl_peers`; while
/// attached, the baseline program measures only those peers' SYN-ACKs.
extension Tracer {
    static let baselineQuietNs: UInt64 = 600_000_000_000
    static let resetKind = UInt8(SYN_EV_CONNECT_RESET.rawValue)

    /// The loaded baseline program (fentry or kprobe), nil when the area does not run.
    var baselineProgram: OpaquePointer? {
        program(.rttlFentryFinishConnect) ?? program(.rttlKprobeFinishConnect)
    }

    /// A record went by (ring-buffer callback): notes a refusing RST's.
    func noteRecordKind(_ raw: UnsafeRawBufferPointer) {
        if raw.first == Self.resetKind { resetRecordSeen = true }
    }

    /// After each read: attach the baseline program when a refusing RST
    /// arrived, detach it after the quiet period. One bpf() call per change.
    func updateResetBaseline() {
        if resetRecordSeen {
            resetRecordSeen = false
            lastResetRecord = bootTimeNow()
            if baselineLink == nil, let prog = baselineProgram {
                baselineLink = bpf_program__attach(prog)
                if baselineLink == nil {
                    let e = errno
                    Diagnostics.log.warning("cannot attach \(String(cString: bpf_program__name(prog))): \(ErrnoName.name(e)); resets are reported without a baseline TTL")
                } else {
                    Diagnostics.log.debug("a remote peer refused a local client: baseline TTL program attached")
                }
            }
        } else if let link = baselineLink, bootTimeNow() &- lastResetRecord >= Self.baselineQuietNs {
            bpf_link__destroy(link)
            baselineLink = nil
            Diagnostics.log.debug("no refusal for \(Self.baselineQuietNs / 1_000_000_000) s: baseline TTL program detached")
        }
    }

    /// Whether the baseline program is attached now (tests, doctor).
    public var resetBaselineAttached: Bool { baselineLink != nil }
}
