import SynsightBase
import SynsightModel
/// `address_not_available` for bind(): why the address could not be bound,
/// from the caller's namespace's addresses as read when the failure was
/// decoded (`DropRouteQuery.of(bind:)`, RouteReader): on no interface
/// (`not_configured`, with the addresses there are: a typo, a container
/// given the host's address), there now (`configured_since`: added after the
/// call, the service started before its network), or an IPv6 address the
/// kernel will not bind yet (`tentative`: duplicate address detection not
/// finished, or the link has no carrier) or at all (`duplicate_address`:
/// another host on the link has it). Without the read, no cause.

extension AttributionEngine {
    func bindAddressNotAvailable(_ e: SocketCallFailure) -> Record {
        var r = baseRecord(e, kind: .bindFailure, reason: .addressNotAvailable)
        r.process = failing(e)
        let q = DropRouteQuery.of(bind: e)
        let family = q?.lookup.family ?? e.family
        var ev = AddressNotAvailableEvidence(call: e)
        ev.addr = e.local.addr.description
        ev.requested = Record.endpoint(e.local)
        ev.ipNonlocalBind = e.nonlocalBind
        var facts = Advice.Facts(address: e.local.addr, family: family)
        var situation = "\(e.local.addr) is not configured on any interface of network namespace \(e.netns)"
        if let q, let routes = drops.routes {
            let found = routes.lookup(q)
            if let all = found.addresses {
                let (cause, text) = Self.bindAddressCause(e, all)
                r.cause = .addressNotAvailable(cause)
                situation = text
                if let mine = all.first(where: { $0.addr == e.local.addr }) {
                    ev.configured = mine.json
                    facts.device = mine.ifname
                } else {
                    ev.addresses = all.prefix(AddressNotAvailableEvidence.maxAddresses).map(\.json)
                    if let host = hostAddress(e, q, routes) {
                        // A container or pod configured with its host's address.
                        ev.hostAddress = host.json
                        facts.hostHasAddress = true
                        situation += "; it is an address of the host's network namespace (\(host.label))"
                    }
                }
            }
            if !found.unavailable.isEmpty { ev.addressesUnavailable = found.unavailable.joined(separator: "; ") }
        }
        r.evidence = ev.fields
        r.hint = "\(who(e)) could not bind \(e.local): \(situation): "
            + Advice.for(reason: .addressNotAvailable, cause: r.cause, facts: facts).fix
        return r
    }

    /// The cause, and what was seen, from the namespace's addresses of the family.
    static func bindAddressCause(_ e: SocketCallFailure, _ all: [LocalAddress]) -> (Cause.AddressNotAvailable, String) {
        let ns = "network namespace \(e.netns)"
        guard let mine = all.first(where: { $0.addr == e.local.addr }) else {
            let have = all.filter { !$0.addr.isLoopback }.prefix(4).map(\.label)
            return (.notConfigured, "\(e.local.addr) is on no interface of \(ns)"
                        + (have.isEmpty ? " (it has no other address but loopback)" : " (it has \(have.joined(separator: ", "))\(all.count > 4 ? ", ..." : ""))"))
        }
        if mine.dadFailed {
            return (.duplicateAddress, "\(mine.label): IPv6 duplicate address detection failed, another host on the link answers for it")
        }
        if mine.tentative {
            return (.tentative, "\(mine.label): IPv6 duplicate address detection has not finished (or cannot start: the link has no carrier)")
        }
        return (.configuredSince, "\(mine.label) is configured now: it was added after the bind()")
    }

    /// The address in synsight's own (the host's) namespace, when the bind()
    /// was made in another one: a container given the host's address.
    func hostAddress(_ e: SocketCallFailure, _ q: DropRouteQuery, _ routes: any DropRouteSource) -> LocalAddress? {
        guard let hostNetns, e.netns != hostNetns else { return nil }
        var hq = q
        hq.netns = hostNetns
        return routes.lookup(hq).addresses?.first { $0.addr == e.local.addr }
    }
}
