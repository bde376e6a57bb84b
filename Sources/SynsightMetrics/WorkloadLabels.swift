import SynsightBase
import SynsightModel

/// Bounds the `workload` label of the event counters: `unit:nginx.service`,
/// `container:web`, `pod:shop/api-7d9f`, or "" when the record names no
/// workload. The first `limit` distinct workloads get a label of their own,
/// later ones are counted as workload="other" (`FirstSeenBound`, as ports).
/// "other" cannot collide with a workload: those always carry a kind prefix.
public struct WorkloadLabels: Sendable {
    public enum Slot: Hashable, Sendable {
        case none
        case workload(String)
        case other

        public var label: String {
            switch self {
            case .none: return ""
            case .workload(let w): return w
            case .other: return "other"
            }
        }
    }

    /// Longest label value kept (in Unicode scalars); longer names are cut.
    public static let maxLength = 128

    var bound: FirstSeenBound<String>

    public init(limit: Int) {
        bound = FirstSeenBound(limit: limit)
    }

    public var limit: Int { bound.limit }
    public var assigned: Set<String> { bound.assigned }

    /// The record's workload: its `process`'s, else its `client`'s.
    public mutating func slot(_ r: Record) -> Slot {
        slot((r.process ?? r.client)?.workload)
    }

    public mutating func slot(_ w: WorkloadIdentity?) -> Slot {
        guard let value = w.flatMap(Self.value) else { return .none }
        return bound.admit(value) ? .workload(value) : .other
    }

    /// The label value for a workload (nil when it names none): pod first,
    /// then container, then systemd unit, as the trace line shows them.
    public static func value(_ w: WorkloadIdentity) -> String? {
        let raw: String
        if let pod = w.pod {
            raw = "pod:" + (pod.name.map { n in pod.namespace.map { "\($0)/\(n)" } ?? n } ?? pod.uid)
        } else if let c = w.container {
            raw = "container:" + (c.name ?? c.shortID)
        } else if let unit = w.unit {
            raw = "unit:" + unit
        } else {
            return nil
        }
        return sanitised(raw)
    }

    /// Names are untrusted (directory and container names): control
    /// characters become "?" and the value is cut to `maxLength`. Backslash
    /// and double quote are escaped by the exposition writer, as for every label.
    static func sanitised(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars.prefix(maxLength) {
            out.append(u.properties.generalCategory == .control ? "?" : u)
        }
        return String(out)
    }
}
