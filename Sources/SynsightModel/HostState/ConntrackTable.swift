import SynsightBase
/// The conntrack table's size limit, which the kernel's per-namespace count
/// is held against (nf_conntrack_alloc: count > nf_conntrack_max and no
/// unassured entry to evict: the packet is dropped). The count is read by
/// BPF at the drop (bpf/conntrack.bpf.h); the limit is a global sysctl, read
/// here by user space.
public struct ConntrackLimits: Sendable, Hashable {
    /// net.netfilter.nf_conntrack_max (global: read-only in other namespaces).
    public var max: UInt32

    public init(max: UInt32) {
        self.max = max
    }

    /// The sysctl holding `max`.
    public static let maxSysctl = "net.netfilter.nf_conntrack_max"
    /// Its file.
    public static let maxPath = "/proc/sys/net/netfilter/nf_conntrack_max"

    /// Parses the sysctl file's text; nil when it is not a number.
    public static func parse(max text: String) -> ConntrackLimits? {
        text.split(whereSeparator: \.isWhitespace).first.flatMap { UInt32($0) }.map { ConntrackLimits(max: $0) }
    }

    /// The table was full when it held `count` entries: the kernel refuses a
    /// new one past the limit (0: no limit).
    public func isFull(count: UInt32) -> Bool { max > 0 && count >= max }
}

/// Reads the conntrack limit (on the pipeline thread, never the ring-buffer's).
public protocol ConntrackLimitSource: Sendable {
    /// The limit now; nil when conntrack is not there (no sysctl).
    func limits() -> ConntrackLimits?
}
