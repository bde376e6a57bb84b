import SynsightBase
import SynsightModel
/// A SYN conntrack itself dropped because its table was full: no rule is
/// involved. nf_conntrack_in (PREROUTING, or OUTPUT for a local client)
/// cannot allocate an entry for the new connection when the namespace's
/// count passes net.netfilter.nf_conntrack_max and no unassured entry can be
/// evicted; it returns NF_DROP and nf_hook_slow frees the SYN with reason
/// NETFILTER_DROP, like a rule's drop (docs/kernel-notes.md, "Conntrack").
///
/// Told apart from a rule's drop by what BPF read at the drop: the SYN had no
/// conntrack entry and the namespace's table held at least the limit. Such a
/// SYN never reached a filter chain (conntrack's hook, priority -200, runs
/// first), so a rule the ruleset would match (`ct state invalid`, a policy)
/// is not the dropper. Reported as `packet_dropped` with cause
/// `conntrack_full`: a kernel resource limit (like a full queue), not a
/// firewall verdict someone could delete.
extension AttributionEngine {
    /// The record when `a`'s first drop was conntrack's "table full"; nil otherwise.
    func conntrackFullRecord(_ a: FirewallState.Attempt) -> Record? {
        let d = a.first
        guard d.isSyn, d.ctState == .invalid, let count = d.ctCount, let limits = a.conntrackLimits,
              limits.isFull(count: count) else { return nil }
        let cause = DropCause.conntrackFull
        var record = Record(ts: clock.epoch(d.ts), kind: .drop, reason: .packetDropped, cause: .packetDropped(cause),
                            port: d.servicePort, family: d.family, netns: d.netns, local: d.local, remote: d.remote)
        record.client = a.client.map(processRef)
        if let l = serverListener(port: d.servicePort, netns: d.netns, family: d.family, server: d.local.addr,
                                  fromServer: false, direction: d.direction) {
            record.process = l.process
        }
        let reason = drops.reasons.name(d.reasonCode)
        var ev = PacketDropEvidence()
        ev.dropReason = reason.known ? reason.name : DropCause.netfilterDrop
        ev.dropReasonCode = Int64(d.reasonCode)
        ev.location = Self.locationText(drops.symbols?.symbolize(d.location), address: d.location)
        ev.segment = "syn"
        ev.direction = d.direction
        ev.interface = d.ifname.isEmpty ? nil : d.ifname
        ev.ifindex = d.ifindex == 0 ? nil : d.ifindex
        ev.chainHook = d.hook.name
        ev.ctState = ConntrackState.invalid.name ?? ""
        ev.conntrackCount = Int64(count)
        ev.conntrackMax = Int64(limits.max)
        ev.sysctl = ConntrackLimits.maxSysctl
        ev.drops = Int64(a.drops)
        if a.client != nil { ev.clientContext = a.processContext ? "process" : "joined" }
        ev.hook = "tp_btf/kfree_skb (NETFILTER_DROP)"
        record.evidence = ev.fields
        var facts = Advice.Facts(port: d.servicePort)
        facts.conntrackMax = limits.max
        let fix = Advice.for(reason: .packetDropped, cause: .packetDropped(cause), facts: facts).fix
        let dev = d.ifname.isEmpty ? "" : " on \(d.ifname)"
        record.hint = "the conntrack table of network namespace \(d.netns) was full (\(count) entries, "
            + "\(ConntrackLimits.maxSysctl)=\(limits.max)) when the SYN \(d.remote) -> \(d.local) (port \(d.servicePort)) arrived\(dev): "
            + "conntrack could not track the new connection and dropped it (no firewall rule did); " + fix
        return record
    }
}
