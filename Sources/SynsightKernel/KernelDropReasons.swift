import CSynsightShim
import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// The running kernel's drop-reason names, from its BTF: `enum
/// skb_drop_reason`, and since 6.4 `enum skb_drop_reason_subsys` with each
/// subsystem's own enum (e.g. openvswitch's `enum ovs_drop_reason`, in the
/// module's BTF when it is loaded). Read once at start-up; no number is
/// hard-coded here.
public enum KernelDropReasons {
    public static func read() -> DropReasonNames {
        let core = values(module: nil, type: "skb_drop_reason")
        let subsystems = values(module: nil, type: "skb_drop_reason_subsys")
        var subReasons: [(String, Int64)] = []
        for (name, id) in subsystems where id > 0 && id < 0x10000 {
            subReasons += subsystemReasons(name: name, id: UInt32(id))
        }
        return DropReasonNames(core: core, subsystems: subsystems, subsystemReasons: subReasons)
    }

    /// A subsystem's reasons: in the module named after it (SUBSYS_OPENVSWITCH
    /// -> openvswitch, SUBSYS_MAC80211_UNUSABLE -> mac80211_unusable, then
    /// mac80211), else built into vmlinux, else none (not loaded: its drops
    /// are reported with the subsystem's name and the number).
    static func subsystemReasons(name: String, id: UInt32) -> [(String, Int64)] {
        let lower = name.replacingPrefix("SKB_DROP_REASON_SUBSYS_").lowercased()
        var parts = lower.split(separator: "_").map(String.init)
        var modules: [String] = []
        while !parts.isEmpty {
            modules.append(parts.joined(separator: "_"))
            parts.removeLast()
        }
        for m in modules where access("/sys/kernel/btf/\(m)", R_OK) == 0 {
            let r = values(module: m, type: nil, high: id)
            if !r.isEmpty { return r }
        }
        return []
    }

    final class Collector {
        var values: [(String, Int64)] = []
    }

    static func values(module: String?, type: String?, high: UInt32 = 0) -> [(String, Int64)] {
        let box = Collector()
        let ctx = Unmanaged.passUnretained(box).toOpaque()
        let fn: syn_enum_fn = { name, value, ctx in
            guard let name, let ctx else { return }
            Unmanaged<Collector>.fromOpaque(ctx).takeUnretainedValue().values.append((String(cString: name), value))
        }
        let rc: Int32 = withExtendedLifetime(box) {
            switch (module, type) {
            case let (m?, t?): return syn_btf_enum_values(m, t, high, fn, ctx)
            case let (m?, nil): return syn_btf_enum_values(m, nil, high, fn, ctx)
            case let (nil, t?): return syn_btf_enum_values(nil, t, high, fn, ctx)
            case (nil, nil): return syn_btf_enum_values(nil, nil, high, fn, ctx)
            }
        }
        return rc < 0 ? [] : box.values
    }
}

extension String {
    func replacingPrefix(_ prefix: String) -> String {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : self
    }
}
