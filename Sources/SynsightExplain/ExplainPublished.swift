import SynsightBase
import SynsightModel

/// A running container's mapping of the port (Docker's published ports:
/// docker-proxy and Docker's DNAT rules both lead there), with what listens
/// in the namespace that holds its end. `explain <published port>` would
/// otherwise see only docker-proxy listening on the host and call the port
/// healthy while every connection through it is reset.
public struct ExplainPublished: Sendable, Hashable {
    /// The host address and port clients use ("0.0.0.0:8080").
    public var published: String
    /// The container's address and port the mapping leads to; the address
    /// unspecified when the runtime does not say it (Podman's bindings:
    /// then any address of the container but its loopback serves).
    public var target: Endpoint
    /// The namespace holding the target address; nil when none on this host does (nothing is judged).
    public var netns: UInt32?
    /// Every listener of that namespace, any port (lowest port first).
    public var listeners: [ExplainListener]

    public init(published: String, target: Endpoint, netns: UInt32?, listeners: [ExplainListener]) {
        self.published = published
        self.target = target
        self.netns = netns
        self.listeners = listeners
    }

    /// Listeners on the target port that take connections to the target address.
    var serving: [ExplainListener] {
        listeners.filter { l in
            guard l.local.port == target.port else { return false }
            if target.addr.isUnspecified { return !l.isLoopback }
            return l.local.addr == target.addr
                || (l.local.addr.isUnspecified && (target.addr.isV4Mapped ? l.takesIPv4 : l.takesIPv6))
        }
    }

    /// "172.17.0.2:80", or "port 80" when the address is not known.
    var targetText: String { target.addr.isUnspecified ? "port \(target.port)" : "\(target)" }
}

extension Analysis {
    /// Each running container's mapping of the port whose end nothing
    /// serves: critical, with the cause the trace would give a connection
    /// through it (`bound_to_other_address`, `wrong_port`, `not_listening`).
    mutating func publishedTargets() {
        for p in input.published {
            guard let ns = p.netns, p.serving.isEmpty else { continue }
            add(publishedFinding(p, netns: ns))
        }
    }

    func publishedFinding(_ p: ExplainPublished, netns ns: UInt32) -> Finding {
        let label = input.label(ns), target = p.targetText
        let lead = "port \(port) is published on \(p.published) to \(target), in \(label), where "
        let onPort = p.listeners.filter { $0.local.port == p.target.port }
        let evidence: [(String, JSONValue)] = [
            ("published", .string(p.published)), ("target", .string(target)), ("target_netns", .int(Int64(ns))),
            ("target_listeners", .array(p.listeners.prefix(20).map { .string($0.address) })),
        ]
        if let first = onPort.first {
            var facts = Advice.Facts(port: p.target.port)
            if !p.target.addr.isUnspecified {
                facts.address = p.target.addr
                facts.family = p.target.addr.isV4Mapped ? .ipv4 : .ipv6
            } else {
                facts.family = first.takesIPv4 ? .ipv4 : .ipv6
            }
            facts.listenerAddress = first.local.addr
            facts.listenerWorkload = "container"
            return Finding(.critical, NoListenerCause.boundToOtherAddress.rawValue,
                           lead + "\(first.owner) listens on \(onPort.map(\.address).joined(separator: ", ")) only: "
                               + "connections through the published port are refused there",
                           remediation: Advice.for(reason: .noListener, cause: .noListener(.boundToOtherAddress), facts: facts).fix,
                           netns: ns, evidence: evidence)
        }
        if let first = p.listeners.first {
            let ports = Set(p.listeners.map(\.local.port)).sorted().prefix(8).map(String.init)
            return Finding(.critical, NoListenerCause.wrongPort.rawValue,
                           lead + "nothing listens on port \(p.target.port); \(first.owner) listens on "
                               + ports.joined(separator: ", ") + " only: connections through the published port are refused there",
                           remediation: Advice.for(reason: .noListener, cause: .noListener(.wrongPort),
                                                   facts: Advice.Facts(port: p.target.port)).fix,
                           netns: ns, evidence: evidence)
        }
        return Finding(.critical, "not_listening",
                       lead + "nothing listens at all: connections through the published port are refused there",
                       remediation: Advice.for(reason: .noListener, cause: .noListener(.neverListened),
                                               facts: Advice.Facts(port: p.target.port)).fix,
                       netns: ns, evidence: evidence)
    }
}
