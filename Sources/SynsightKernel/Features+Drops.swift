import SynsightBase
import SynsightModel
import SynsightNftables

extension KernelFeatures {
    /// Handshake drops for any other reason come from the same kfree_skb
    /// program as NETFILTER_DROP (bpf/drops.bpf.h): what loads it loads them.
    public var packetDropProbe: ProbeResult { firewall.drop }

    /// What `doctor` says about them: how many reasons this kernel's BTF
    /// names, its subsystems, and whether drop locations get symbols.
    public func packetDropDetail() -> String {
        let names = dropReasons
        guard !names.isEmpty else { return "no enum skb_drop_reason in BTF: reasons reported by number" }
        var parts = ["\(names.count) reasons named from BTF (enum skb_drop_reason)"]
        if names.subsystemCount == 0 {
            parts.append("no drop-reason subsystems (before 6.4)")
        } else {
            parts.append("subsystems \(names.subsystemNames.joined(separator: ", ")) with \(names.subsystemReasonCount) reasons named"
                + (names.subsystemReasonCount == 0 ? " (their modules are not loaded: reported by number)" : ""))
        }
        parts.append(KernelSymbolTable.addressesVisible()
            ? "locations named from /proc/kallsyms"
            : "locations as addresses (/proc/kallsyms hides them without root)")
        return parts.joined(separator: "; ")
    }
}

extension ReasonArea {
    /// The kfree_skb program of the firewall area, for every other reason.
    static func packetDropsPlan(_ f: KernelFeatures) -> AreaPlan {
        f.packetDropProbe.isSupported ? .run([.onKfreeSkb])
            : .cannotRun(CannotRun(needs: "tp_btf/kfree_skb with drop reasons", probe: f.packetDropProbe))
    }
}
