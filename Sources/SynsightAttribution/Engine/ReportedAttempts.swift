/// Connection attempts already reported, by key (a 4-tuple, with the
/// segment where one attempt can give several records), each with its
/// client ISN (bpf/skb.bpf.h, seg_isn) and the first drop's time.
///
/// A dropped SYN is retransmitted with the same ISN for up to ~130 s
/// (tcp_syn_retries=6): a later drop of the same attempt is not a new
/// failure. A client that reuses its 4-tuple (a port freed by a refusal,
/// a storm cycling through the ephemeral range, a fixed source port) starts
/// a new attempt with a new ISN: that one is reported too. A segment with
/// no ISN (0: other TCP than a handshake's, a data segment or a FIN) belongs
/// to whichever attempt of its 4-tuple was reported.
struct ReportedAttempts<Key: Hashable> {
    struct Entry {
        var ts: UInt64
        var isn: UInt32
    }

    private var entries: [Key: Entry] = [:]
    /// Past it, expired entries go, and if none has, all of them (a storm
    /// of distinct attempts then loses only the retransmissions' dedup).
    let capacity: Int

    /// A SYN is retransmitted for up to ~130 s (tcp_syn_retries=6).
    static var ttl: UInt64 { 140_000_000_000 }
    static var defaultCapacity: Int { 65536 }

    init(capacity: Int = Self.defaultCapacity) {
        self.capacity = capacity
    }

    /// `isn`'s attempt of `key` was reported in the TTL before `ts`.
    func contains(_ key: Key, isn: UInt32, at ts: UInt64) -> Bool {
        guard let e = entries[key] else { return false }
        return Self.sameAttempt(e.isn, isn) && e.ts &+ Self.ttl > ts
    }

    /// `later` is a segment of the attempt whose ISN is `first`: the same
    /// ISN, or none known (0).
    static func sameAttempt(_ first: UInt32, _ later: UInt32) -> Bool { later == 0 || first == later }

    /// Some attempt of `key` was reported in the TTL before `ts` (for a
    /// client's error, which carries no ISN).
    func reported(_ key: Key, before ts: UInt64) -> Bool {
        guard let e = entries[key] else { return false }
        return ts >= e.ts && ts - e.ts < Self.ttl
    }

    /// Some attempt of `key` was ever reported and is still held.
    func holds(_ key: Key) -> Bool { entries[key] != nil }

    /// Notes `isn`'s attempt of `key`, first dropped at `ts` (`now`: the
    /// time expired entries are measured against).
    mutating func insert(_ key: Key, isn: UInt32, ts: UInt64, now: UInt64) {
        if entries.count >= capacity, entries[key] == nil {
            entries = entries.filter { $0.value.ts &+ Self.ttl > now }
            if entries.count >= capacity { entries.removeAll() }
        }
        entries[key] = Entry(ts: ts, isn: isn)
    }
}
