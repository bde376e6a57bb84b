import SynsightBase

/// Hop counts from a received IPv4 TTL or IPv6 hop limit. Senders start from
/// one of a few defaults (64: Linux, BSD, macOS; 128: Windows; 255: network
/// gear, Solaris); the one a packet started from is taken as the smallest of
/// them not below what arrived, and the hops it crossed as the difference.
public enum HopCount {
    /// The initial TTLs in common use, ascending.
    public static let initialTTLs: [UInt8] = [64, 128, 255]

    /// The initial TTL `observed` most likely started from.
    public static func initialTTL(observed: UInt8) -> UInt8 {
        initialTTLs.first { $0 >= observed } ?? 255
    }

    /// Routers crossed between the sender and this host.
    public static func hops(observed: UInt8) -> Int {
        Int(initialTTL(observed: observed)) - Int(observed)
    }
}

/// How a refusing RST's hop count compares with the peer's usual one.
public enum ResetTTLVerdict: String, Sendable, Hashable, CaseIterable {
    /// The RST crossed as many hops as the peer's SYN-ACKs: it came from as
    /// far as the peer (the peer, or a box just next to it).
    case consistent
    /// It crossed a different number of hops: something else on the path
    /// answered in the peer's name (a likely middlebox).
    case differs
    /// No SYN-ACK of this peer was measured yet: nothing to compare with.
    case noBaseline = "no_baseline"
    /// The RST's TTL could not be read.
    case unreadable
}

/// Evidence `reset`: the TTL of the RST that refused a local connect() next
/// to the TTL the same peer's SYN-ACKs arrive with (ResetTTLAttribution.swift
/// fills it; the schema's `$defs/reset_ttl` describes it). The comparison is
/// by inferred hop count, so a peer whose RSTs start from another initial TTL
/// than its SYN-ACKs (255 against 64) is not flagged for that alone.
public struct ResetTTLEvidence: Sendable, Hashable {
    /// The RST's TTL (IPv4) or hop limit (IPv6); nil: unreadable.
    public var ttl: UInt8?
    public var family: AddressFamily
    /// The peer's SYN-ACKs measured before the RST; nil: none yet.
    public var baseline: PeerTTLBaseline?
    /// How long before the RST the latest of them arrived.
    public var baselineAgeMs: Int64?
    /// The kernel hook that read the RST.
    public var hook: String

    public init(ttl: UInt8?, family: AddressFamily, baseline: PeerTTLBaseline?, baselineAgeMs: Int64? = nil, hook: String) {
        self.ttl = ttl
        self.family = family
        self.baseline = baseline
        self.baselineAgeMs = baselineAgeMs
        self.hook = hook
    }

    /// The RST's hop count.
    public var hops: Int? { ttl.map(HopCount.hops(observed:)) }

    /// The fewest and most hops the peer's SYN-ACKs crossed.
    public var baselineHops: ClosedRange<Int>? {
        guard let b = baseline else { return nil }
        let a = HopCount.hops(observed: b.ttlMin), c = HopCount.hops(observed: b.ttlMax)
        return min(a, c)...max(a, c)
    }

    public var verdict: ResetTTLVerdict {
        guard let hops else { return .unreadable }
        guard let range = baselineHops else { return .noBaseline }
        return range.contains(hops) ? .consistent : .differs
    }

    /// A likely middlebox: the RST's hop count is not the peer's.
    public var likelyMiddlebox: Bool { verdict == .differs }

    /// How many hops nearer this host the RST was sent than the peer's
    /// SYN-ACKs (negative: farther); nil unless the verdict is `differs`.
    public var hopsCloser: Int? {
        guard verdict == .differs, let hops, let range = baselineHops else { return nil }
        return hops < range.lowerBound ? range.lowerBound - hops : range.upperBound - hops
    }

    /// "TTL" or "hop limit", for people.
    public var fieldName: String { family == .ipv6 ? "hop limit" : "TTL" }

    /// The JSON object of evidence `reset` (schema `$defs/reset_ttl`).
    public var json: JSONValue {
        var f: [(String, JSONValue)] = [("field", .string(family == .ipv6 ? "hop_limit" : "ttl"))]
        if let ttl {
            f += [("ttl", .int(Int64(ttl))), ("initial_ttl", .int(Int64(HopCount.initialTTL(observed: ttl)))),
                  ("hops", .int(Int64(HopCount.hops(observed: ttl))))]
        }
        if let b = baseline, let range = baselineHops {
            var bf: [(String, JSONValue)] = [
                ("packets", .int(Int64(b.packets))), ("ttl_min", .int(Int64(b.ttlMin))), ("ttl_max", .int(Int64(b.ttlMax))),
                ("ttl_last", .int(Int64(b.ttlLast))), ("hops_min", .int(Int64(range.lowerBound))),
                ("hops_max", .int(Int64(range.upperBound))),
            ]
            if let baselineAgeMs { bf.append(("age_ms", .int(baselineAgeMs))) }
            f.append(("baseline", .object(bf)))
        }
        f.append(("verdict", .string(verdict.rawValue)))
        f.append(("likely_middlebox", .bool(likelyMiddlebox)))
        if let hopsCloser { f.append(("hops_closer", .int(Int64(hopsCloser)))) }
        f.append(("hook", .string(hook)))
        return .object(f)
    }

    /// One sentence for a hint: "the reset arrived with TTL 64 (0 hops away)
    /// while 10.0.0.2's SYN-ACKs arrive with TTL 63 (1 hop away, 3 measured)".
    public func sentence(peer: IPAddress) -> String {
        let rst = ttl.map { "the reset arrived with \(fieldName) \($0) (\(Self.hopsText(HopCount.hops(observed: $0))) away)" }
            ?? "the reset's \(fieldName) could not be read"
        guard let b = baseline, let range = baselineHops else {
            return rst + ", and no SYN-ACK of \(peer) was measured before it to compare with"
        }
        let ttls = b.ttlMin == b.ttlMax ? "\(b.ttlMin)" : "\(b.ttlMin)-\(b.ttlMax)"
        let hops = range.lowerBound == range.upperBound ? Self.hopsText(range.lowerBound)
            : "\(range.lowerBound)-\(range.upperBound) hops"
        return rst + " while \(peer)'s SYN-ACKs arrive with \(fieldName) \(ttls) (\(hops) away, \(b.packets) measured)"
    }

    static func hopsText(_ n: Int) -> String { n == 1 ? "1 hop" : "\(n) hops" }
}
