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

extension NftRuleset {
    static let inboundHooks: Set<String> = ["prerouting", "input", "forward"]

    /// How the port's inbound traffic reaches the regular chain `chain`.
    func inboundReach(_ chain: Chain, port: UInt16, depth: Int = 0) -> ChainReach {
        guard depth < 8, !hasVerdictMap(family: chain.family, table: chain.table) else { return .unknown }
        let jumps = rules.filter { r in
            r.family == chain.family && r.table == chain.table && r.expr.contains { x in
                (x["jump"] ?? x["goto"])?["target"]?.stringValue == chain.name
            }
        }
        var entries: [(jump: Rule, conditions: [String], portSpecific: Bool)] = []
        for j in jumps {
            guard let parent = chains.first(where: { $0.family == j.family && $0.table == j.table && $0.name == j.chain }) else {
                return .unknown
            }
            var above = ChainEntry(portSpecific: false, conditions: [])
            if let hook = parent.hook {
                guard Self.inboundHooks.contains(hook) else { continue }  // an output chain's jump carries no inbound SYN
            } else {
                switch inboundReach(parent, port: port, depth: depth + 1) {
                case .unreachable: continue
                case .unknown: return .unknown
                case .via(let e): above = e
                }
            }
            guard let e = evaluate(rule: j, port: port, direction: .inbound, families: NftRuleset.addressFamilies(j.family)),
                  e.jumps else { continue }
            entries.append((j, above.conditions + e.conditions + e.unknown.map { "\($0) (not evaluated)" },
                            e.portSpecific || above.portSpecific))
        }
        guard !entries.isEmpty else { return .unreachable }
        let portSpecific = entries.allSatisfy(\.portSpecific)
        guard entries.count == 1, let only = entries.first else {
            let from = Array(Set(entries.map(\.jump.chain))).sorted().joined(separator: ", ")
            return .via(ChainEntry(portSpecific: portSpecific, conditions: ["only when \(from) jumps to \(chain.name)"]))
        }
        // One jump, every one of whose matches fits the port: no condition of its own.
        guard !only.conditions.isEmpty else { return .via(ChainEntry(portSpecific: portSpecific, conditions: [])) }
        let word = IptablesLegacy.handleWord(legacy: IptablesLegacy.isLegacy(only.jump.family))
        return .via(ChainEntry(portSpecific: portSpecific, conditions: only.conditions
            + ["sent to \(chain.name) by \(only.jump.chain) \(word) \(only.jump.handle)"]))
    }

    /// Does a rule of the table use a verdict map (`vmap`)? Its elements may
    /// jump to any chain: reachability is then not decided from jumps alone.
    func hasVerdictMap(family: String, table: String) -> Bool {
        rules.contains { r in r.family == family && r.table == table && r.expr.contains { $0["vmap"] != nil } }
    }
}
