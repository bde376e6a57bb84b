import Glibc
import SynsightBase
import SynsightModel
import SynsightNftables

/// Names the rule behind a drop: the ruleset of the packet's network
/// namespace, read by an `NftablesReader` (in-process, on its own thread,
/// pinned when the drop was seen), matched against the packet.
/// iptables-nft rules are nft rules too (tables `ip filter` / `ip6 filter`).
///
/// Thread use: `pin` on the ring-buffer thread, `lookup` on the pipeline
/// thread; all state is the reader's, behind its lock.
public final class NftRuleSource: FirewallRuleSource, @unchecked Sendable {
    public let reader: NftablesReader
    /// How long a lookup waits for a read in progress before the record is
    /// emitted without its rule (saying why).
    public let timeoutNs: UInt64

    public init(ttlNs: UInt64 = 1_000_000_000, timeoutMs: Int = 3000, delayMs: Int = 0) {
        reader = NftablesReader(ttlNs: ttlNs, delayMs: delayMs)
        timeoutNs = UInt64(timeoutMs) * 1_000_000
    }

    public func pin(netns: UInt32) { reader.pin(netns) }

    public func lookup(_ packet: FirewallPacket) -> FirewallRuleLookup? {
        switch reader.ruleset(packet.netns, timeoutNs: timeoutNs) {
        case .unavailable(let why):
            Diagnostics.log.debug("no ruleset for netns \(packet.netns): \(why)")
            return FirewallRuleLookup(candidates: [], method: "ruleset_unavailable", unavailable: why)
        case .ruleset(let rs):
            var lookup = Self.rank(rs.candidates(for: packet))
            if !packet.icmp { lookup.ipvs = rs.ipvsService(to: packet.local) }
            return lookup
        }
    }

    /// The ruleset of `netns` now (explain), waiting for the read.
    public func ruleset(netns: UInt32) -> NftablesReader.Outcome {
        reader.ruleset(netns, timeoutNs: timeoutNs)
    }

    /// Among equally good candidates, a rule whose counter moved is the likelier one.
    static func rank(_ all: [FirewallRule]) -> FirewallRuleLookup {
        let counted = all.filter { ($0.packets ?? 0) > 0 }
        let method = all.count > 1 && !counted.isEmpty && counted.count < all.count ? "ruleset_match+counter" : "ruleset_match"
        var ordered = all
        if let first = all.first, !counted.isEmpty {
            let sameRank = all.filter { $0.exact == first.exact && $0.verdict != .policyDrop }
            let rest = all.filter { !($0.exact == first.exact && $0.verdict != .policyDrop) }
            ordered = sameRank.filter { ($0.packets ?? 0) > 0 } + sameRank.filter { ($0.packets ?? 0) == 0 } + rest
        }
        return FirewallRuleLookup(candidates: ordered, method: method)
    }
}
