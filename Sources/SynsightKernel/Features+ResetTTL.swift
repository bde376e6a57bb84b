import SynsightBase
import SynsightModel

/// What bpf/resets.bpf.h needs: the RST that refused a local connect(), with
/// its TTL, from tcp_reset(sk, skb) (the only hook that has both the socket
/// and the packet: docs/kernel-notes.md §11), and the baseline of the peer's
/// SYN-ACKs from tcp_finish_connect(sk, skb), attached on demand. fentry
/// where BPF trampolines load, else kprobe. Probed once.
public struct ResetTTLProbes: Sendable {
    /// fentry, else kprobe, on tcp_reset.
    public var reset: ProbeResult = .unsupported("not probed")
    /// The same kind of hook on tcp_finish_connect (the baseline).
    public var baseline: ProbeResult = .unsupported("not probed")
    /// Which kind serves both; nil: the area cannot run.
    public var hook: Hook?

    public enum Hook: String, Sendable, Equatable, CaseIterable {
        case fentry
        case kprobe
    }

    public init() {}

    var allResults: [ProbeResult] { [reset, baseline] }

    static func probe(_ f: KernelFeatures, symbols: PendingSymbols) -> ResetTTLProbes {
        var p = ResetTTLProbes()
        var fentry: ProbeResult
        if !f.btf.isSupported {
            fentry = .unsupported("no kernel BTF")
        } else if f.choices.resetTTL == .kprobe {
            fentry = .unsupported("disabled by --force-hook resetttl=kprobe")
        } else {
            let rc = ProgramProbe.fentry("tcp_reset")
            fentry = rc == 0 ? .supports("fentry/tcp_reset") : KernelFeatures.trampolineRefusal("fentry/tcp_reset", rc)
            if fentry.isSupported {
                let rc2 = ProgramProbe.fentry("tcp_finish_connect")
                if rc2 != 0 { fentry = KernelFeatures.trampolineRefusal("fentry/tcp_finish_connect", rc2) }
            }
        }
        if fentry.isSupported {
            p.reset = .supports("fentry/tcp_reset", "fentry/tcp_reset: the TTL of each RST a connecting socket accepts")
            p.baseline = .supports("fentry/tcp_finish_connect", "fentry/tcp_finish_connect: the TTL of watched peers' SYN-ACKs, "
                + "attached after a refusal until 10 min without one")
            p.hook = .fentry
            return p
        }
        let k1 = KernelFeatures.kprobeTarget("tcp_reset", symbols, purpose: "")
        let k2 = KernelFeatures.kprobeTarget("tcp_finish_connect", symbols, purpose: "")
        guard k1.isSupported, k2.isSupported else {
            let kprobe = k1.isSupported ? k2 : k1
            let why = "\(fentry.detail); \(kprobe.detail)"
            let inconclusive = [fentry, kprobe].first(where: \.isInconclusive)
            p.reset = inconclusive ?? .unsupported(why)
            p.baseline = p.reset
            return p
        }
        p.reset = .supports("kprobe/tcp_reset", "kprobe/tcp_reset: the TTL of each RST a connecting socket accepts")
        p.baseline = .supports("kprobe/tcp_finish_connect", "kprobe/tcp_finish_connect: the TTL of watched peers' SYN-ACKs, "
            + "attached after a refusal until 10 min without one")
        p.hook = .kprobe
        return p
    }
}

extension ReasonArea {
    /// The tcp_reset program, and the baseline program (loaded, attached on demand).
    static func injectedResetsPlan(_ f: KernelFeatures) -> AreaPlan {
        switch f.resetTTL.hook {
        case .fentry: return .run([.rttlFentryReset, .rttlFentryFinishConnect])
        case .kprobe: return .run([.rttlKprobeReset, .rttlKprobeFinishConnect])
        case nil: return .cannotRun(CannotRun(needs: "fentry or kprobe on tcp_reset and tcp_finish_connect", probe: f.resetTTL.reset))
        }
    }
}
