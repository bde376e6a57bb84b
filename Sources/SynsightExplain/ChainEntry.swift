import SynsightModel
import SynsightNftables

/// How a port's inbound traffic reaches a regular chain (one no hook calls):
/// through the jump and goto rules of other chains whose own matches fit the
/// port. fail2ban's `-p tcp -m multiport --dports 22 -j f2b-sshd` sends only
/// port 22 there, so the bans in `f2b-sshd` concern port 22 alone; asked
/// about port 443, they are not findings at all.
package enum ChainReach {
    /// No jump to the chain fits the port's inbound traffic: its rules never see it.
    case unreachable
    /// Maybe reached by a verdict map, or too deep to follow: its rules are
    /// listed with "only when another chain jumps to ..." (as before this was known).
    case unknown
    case via(ChainEntry)
}

package struct ChainEntry {
    /// Every jump that fits names the port (or a chain above it does).
    package var portSpecific: Bool
    /// What must hold for the traffic to be sent there, as conditions of the chain's rules.
    package var conditions: [String]
}

/// A ruleset's chains, their rules and the jumps between them, indexed once
/// per question: kube-proxy's iptables tables hold thousands of chains and
/// tens of thousands of rules, and each chain's reach is asked for.
struct ChainIndex {
    /// Each chain's rules, in ruleset order, by `NftRuleset.chainKey`.
    var rules: [String: [NftRuleset.Rule]] = [:]
    /// The jump and goto rules to each chain, by the target's key.
    var jumpsTo: [String: [NftRuleset.Rule]] = [:]
    var chains: [String: NftRuleset.Chain] = [:]
    /// "family table" of the tables with a verdict map (`vmap`): its
    /// elements may jump to any chain, so reachability there is not
    /// decided from jumps alone.
    var verdictMapTables: Set<String> = []
    /// Each chain's reach, once found (a reach cut short by the depth
    /// bound depends on where it was asked from, and is not kept).
    var reach: [String: ChainReach] = [:]

    init(_ rs: NftRuleset) {
        for c in rs.chains { chains[NftRuleset.chainKey(c.family, c.table, c.name)] = c }
        for r in rs.rules {
            rules[NftRuleset.chainKey(r.family, r.table, r.chain), default: []].append(r)
            for x in r.expr {
                if x["vmap"] != nil { verdictMapTables.insert("\(r.family) \(r.table)") }
                if let t = (x["jump"] ?? x["goto"])?["target"]?.stringValue {
                    jumpsTo[NftRuleset.chainKey(r.family, r.table, t), default: []].append(r)
                }
            }
        }
    }
}

extension NftRuleset {
    static let inboundHooks: Set<String> = ["prerouting", "input", "forward"]

    /// How the port's inbound traffic reaches the regular chain `chain`.
    func inboundReach(_ chain: Chain, port: UInt16, index: inout ChainIndex) -> ChainReach {
        reach(chain, port: port, index: &index, depth: 0).reach
    }

    /// The reach, and whether the depth bound cut it short. Jumps are
    /// followed 8 chains up at most (a jump cycle ends there).
    func reach(_ chain: Chain, port: UInt16, index: inout ChainIndex, depth: Int) -> (reach: ChainReach, bounded: Bool) {
        let key = Self.chainKey(chain.family, chain.table, chain.name)
        if let known = index.reach[key] { return (known, false) }
        guard depth < 8 else { return (.unknown, true) }
        let found = reachOnce(chain, port: port, index: &index, depth: depth)
        if !found.bounded { index.reach[key] = found.reach }
        return found
    }

    func reachOnce(_ chain: Chain, port: UInt16, index: inout ChainIndex, depth: Int) -> (reach: ChainReach, bounded: Bool) {
        guard !index.verdictMapTables.contains("\(chain.family) \(chain.table)") else { return (.unknown, false) }
        var entries: [(jump: Rule, conditions: [String], portSpecific: Bool)] = []
        var bounded = false
        for j in index.jumpsTo[Self.chainKey(chain.family, chain.table, chain.name)] ?? [] {
            guard let parent = index.chains[Self.chainKey(j.family, j.table, j.chain)] else { return (.unknown, bounded) }
            var above = ChainEntry(portSpecific: false, conditions: [])
            if let hook = parent.hook {
                guard Self.inboundHooks.contains(hook) else { continue }  // an output chain's jump carries no inbound SYN
            } else {
                let up = reach(parent, port: port, index: &index, depth: depth + 1)
                bounded = bounded || up.bounded
                switch up.reach {
                case .unreachable: continue
                case .unknown: return (.unknown, bounded)
                case .via(let e): above = e
                }
            }
            guard let e = evaluate(rule: j, port: port, direction: .inbound, families: NftRuleset.addressFamilies(j.family)),
                  e.jumps else { continue }
            entries.append((j, above.conditions + e.conditions + e.unknown.map { "\($0) (not evaluated)" },
                            e.portSpecific || above.portSpecific))
        }
        guard !entries.isEmpty else { return (.unreachable, bounded) }
        let portSpecific = entries.allSatisfy(\.portSpecific)
        guard entries.count == 1, let only = entries.first else {
            let from = Array(Set(entries.map(\.jump.chain))).sorted().joined(separator: ", ")
            return (.via(ChainEntry(portSpecific: portSpecific, conditions: ["only when \(from) jumps to \(chain.name)"])), bounded)
        }
        // One jump, every one of whose matches fits the port: no condition of its own.
        guard !only.conditions.isEmpty else { return (.via(ChainEntry(portSpecific: portSpecific, conditions: [])), bounded) }
        let word = IptablesLegacy.handleWord(legacy: IptablesLegacy.isLegacy(only.jump.family))
        return (.via(ChainEntry(portSpecific: portSpecific, conditions: only.conditions
            + ["sent to \(chain.name) by \(only.jump.chain) \(word) \(only.jump.handle)"])), bounded)
    }
}
