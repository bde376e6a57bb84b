import SynsightBase
import SynsightModel
import SynsightNftables
/// Firewall REJECT vs DROP, and which rule.
///
/// The kernel reports the same thing for both verdicts (a packet freed with
/// NETFILTER_DROP). What tells them apart, strongest first:
/// - `client_errno`: the local client's connect() failed with ECONNREFUSED
///   (REJECT: tcp-reset or ICMP) or ETIMEDOUT (DROP);
/// - `icmp_send`: an ICMP error was sent for the very same skb just before
///   it was freed (IPv4 REJECT with ICMP);
/// - `retransmission`: the client sent the SYN again (it got no answer), seen
///   as a second drop of the same attempt (4-tuple and client ISN) or as the
///   local client's tcp_retransmit_skb;
/// - `single_drop`: none of these within the decision window. A client that
///   got no answer retransmits after 1 s (the initial RTO), so one drop and
///   silence most likely means it got an answer: REJECT, unless the rule
///   found in the ruleset says DROP.

/// The engine's firewall state (one stored property of `AttributionEngine`).
public struct FirewallState {
    /// Looks up the rule behind a drop; nil: no rule naming.
    public var rules: (any FirewallRuleSource)?
    /// How long a first drop waits for the signals above.
    public var decisionWindowNs: UInt64 = 1_500_000_000
    /// The conntrack table's limit, for drops conntrack itself made (ConntrackFull.swift); nil: not read.
    public var conntrack: (any ConntrackLimitSource)?

    struct Attempt {
        package var first: FirewallDrop
        package var drops: Int = 1
        var icmp: FirewallICMP?
        package var client: TaskInfo?
        package var processContext = false
        var retransmitted = false
        /// The conntrack limit when the first drop was ingested (it had no entry).
        var conntrackLimits: ConntrackLimits?
        package var deadline: UInt64
        package var serial: UInt64
    }

    var attempts: [JoinKey: Attempt] = [:]
    /// ICMP errors by offending skb, waiting for that skb's NETFILTER_DROP.
    var icmpBySkb: [UInt64: FirewallICMP] = [:]
    /// Client outcomes that arrived before the drop they answer.
    var earlyErrors = ExpiringMap<JoinKey, ConnectError>()
    static let maxEarlyErrors = 16384
    /// Attempts already reported: their later retransmissions are not new refusals.
    var decided = ReportedAttempts<JoinKey>()
    /// Attempts whose answer (a RST or ICMP error) was dropped and reported,
    /// by the answered SYN's 4-tuple: kept apart from `decided`, because the
    /// SYN itself may have been dropped by a REJECT rule whose answer is then
    /// dropped too (two records: the rule that rejected, the one that dropped the answer).
    var answered = ReportedAttempts<JoinKey>()
    package var serial: UInt64 = 0

    static let maxAttempts = 65536

    public init(rules: (any FirewallRuleSource)? = nil) {
        self.rules = rules
    }

    public var pendingCount: Int { attempts.count }
}

extension AttributionEngine {
    /// Feeds one firewall-related event (drop, ICMP, client SYN retransmission).
    mutating func ingestFirewall(_ event: KernelEvent) -> [Record] {
        switch event {
        case .firewallICMP(let i):
            let key = JoinKey(client: i.remote, server: i.local)
            if firewall.attempts[key] != nil {
                // An ICMP for a retransmission of a pending attempt.
                firewall.attempts[key]!.icmp = i
                return []
            }
            if firewall.icmpBySkb.count > 4096 { firewall.icmpBySkb = firewall.icmpBySkb.filter { $0.value.ts + 1_000_000_000 > i.ts } }
            firewall.icmpBySkb[i.skbAddr] = i
            return []
        case .synRetransmit(let r):
            let key = JoinKey(client: r.local, server: r.remote)
            guard firewall.attempts[key] != nil else { return [] }
            firewall.attempts[key]!.client = r.task
            firewall.attempts[key]!.retransmitted = true
            return decideFirewall(key, firewall.attempts[key]!.icmp != nil ? .icmpSend : .retransmission, now: r.ts)
        case .firewallDrop(let d):
            return firewallDrop(d)
        default:
            return []
        }
    }

    package mutating func firewallDrop(_ d: FirewallDrop) -> [Record] {
        if d.segment?.isRefusal == true { return firewallAnswerDrop(d) }
        // A SYN-ACK goes from the server to the client: keyed like its SYN, so
        // the local client's retransmitted SYN and connect() error join it.
        let key = JoinKey(client: d.clientEnd, server: d.serverEnd)
        var icmp: FirewallICMP?
        if let i = firewall.icmpBySkb.removeValue(forKey: d.skbAddr), i.local == d.local, i.remote == d.remote {
            icmp = i
        }
        if firewall.decided.contains(key, isn: d.isn, at: d.ts) {
            return []  // a retransmission of an attempt already reported
        }
        var out: [Record] = []
        if let a = firewall.attempts[key] {
            if ReportedAttempts<JoinKey>.sameAttempt(a.first.isn, d.isn) { return droppedAgain(key, d, icmp: icmp) }
            // A new attempt reusing the 4-tuple: the pending one ended
            // without a retransmission (its client got an answer, or gave up).
            out = decideFirewall(key, .singleDrop, now: d.ts)
        }
        return out + startAttempt(key, d, icmp: icmp)
    }

    /// The pending attempt dropped again: its client got no answer (DROP),
    /// unless an ICMP error was sent for it (REJECT).
    mutating func droppedAgain(_ key: JoinKey, _ d: FirewallDrop, icmp: FirewallICMP?) -> [Record] {
        guard var a = firewall.attempts[key] else { return [] }
        a.drops += 1
        if let icmp { a.icmp = icmp }
        if a.client == nil, let c = d.client { a.client = c }
        firewall.attempts[key] = a
        return decideFirewall(key, a.icmp != nil ? .icmpSend : .retransmission, now: d.ts)
    }

    /// An attempt's first drop: it waits for the signals that decide it,
    /// unless its client's outcome came first.
    mutating func startAttempt(_ key: JoinKey, _ d: FirewallDrop, icmp: FirewallICMP?) -> [Record] {
        firewall.serial += 1
        var a = FirewallState.Attempt(first: d, icmp: icmp, client: d.client, processContext: d.processContext,
                                      deadline: d.ts + firewall.decisionWindowNs, serial: firewall.serial)
        // Read now, close to the drop: the limit may change before the attempt is decided.
        if d.ctCount != nil, d.ctState == .invalid { a.conntrackLimits = firewall.conntrack?.limits() }
        if let ce = firewall.earlyErrors.removeValue(forKey: key), ce.ts + firewall.decisionWindowNs > d.ts {
            a.client = a.client ?? ce.task
            firewall.attempts[key] = a
            return firewallClientOutcome(ce) ?? []
        }
        firewall.attempts[key] = a
        // Even with an ICMP (REJECT, certain) the attempt waits for the local
        // client: a client still inside connect() when the ICMP arrives only
        // notes a soft error, retransmits after 1 s and fails then.
        guard firewall.attempts.count > FirewallState.maxAttempts else { return [] }
        return expireFirewall(now: UInt64.max, limit: firewall.attempts.count - FirewallState.maxAttempts)
    }

    /// A RST or ICMP error answering a SYN, dropped: decided at once (it is
    /// a drop whatever the rule says: the client never sees the answer), at
    /// most once per answered attempt (its retransmitted SYNs are answered
    /// and dropped again, acknowledging the same ISN).
    mutating func firewallAnswerDrop(_ d: FirewallDrop) -> [Record] {
        let key = JoinKey(client: d.clientEnd, server: d.serverEnd)
        if firewall.answered.contains(key, isn: d.isn, at: d.ts) { return [] }
        firewall.answered.insert(key, isn: d.isn, ts: d.ts, now: d.ts)
        firewall.serial += 1
        let a = FirewallState.Attempt(first: d, client: d.client, processContext: d.processContext,
                                      deadline: d.ts, serial: firewall.serial)
        return [firewallRecord(a, method: .answerDropped, errno: nil)]
    }

    /// A local connect() failed: if it answers a pending firewall drop, decide
    /// it. Returns nil when the error is not about a firewall drop (so the
    /// no-listener join may use it).
    mutating func firewallClientOutcome(_ ce: ConnectError) -> [Record]? {
        let key = JoinKey(client: ce.local, server: ce.remote)
        guard var a = firewall.attempts[key] else {
            // e.g. ETIMEDOUT long after a reported DROP, or after its RST was dropped.
            if firewall.decided.holds(key) || firewall.answered.holds(key) { return [] }
            // Every refused connect passes here (a storm: hundreds of
            // thousands a second): expiry is O(1) amortized, oldest first.
            _ = firewall.earlyErrors.expire(now: ce.ts)
            if firewall.earlyErrors.count >= FirewallState.maxEarlyErrors { _ = firewall.earlyErrors.removeOldest() }
            firewall.earlyErrors.insert(ce, forKey: key, deadline: ce.ts &+ firewall.decisionWindowNs)
            return nil
        }
        a.client = ce.task
        firewall.attempts[key] = a
        return decideFirewall(key, .clientErrno, now: ce.ts, errno: ce.errno)
    }

    /// Decides every attempt whose window has passed.
    mutating func expireFirewall(now: UInt64, limit: Int = Int.max) -> [Record] {
        if now != UInt64.max, !firewall.earlyErrors.isEmpty {
            _ = firewall.earlyErrors.expire(now: now)
        }
        guard !firewall.attempts.isEmpty else { return [] }
        var due = firewall.attempts.filter { $0.value.deadline <= now }.sorted { $0.value.serial < $1.value.serial }
        if due.count > limit { due = Array(due.prefix(limit)) }
        var out: [Record] = []
        for (k, a) in due {
            out += decideFirewall(k, a.icmp != nil ? .icmpSend : .singleDrop, now: min(now, a.deadline))
        }
        return out
    }

    mutating func decideFirewall(_ key: JoinKey, _ method: FirewallMethod, now: UInt64, errno: Int32? = nil) -> [Record] {
        guard let a = firewall.attempts.removeValue(forKey: key) else { return [] }
        // The ICMP error generated for the packet is the most direct evidence.
        let method: FirewallMethod = a.icmp != nil ? .icmpSend : method
        firewall.decided.insert(key, isn: a.first.isn, ts: a.first.ts, now: now)
        return [firewallRecord(a, method: method, errno: errno)]
    }

    func firewallRecord(_ a: FirewallState.Attempt, method: FirewallMethod, errno: Int32?) -> Record {
        let d = a.first
        if let full = conntrackFullRecord(a) { return full }
        let segment = d.segment
        // An ICMP error goes from the server's side to the client: its
        // addresses are the quoted SYN's, reversed.
        let icmp = segment == .icmp
        let packet = FirewallPacket(netns: d.netns, family: d.family, local: icmp ? d.remote : d.local,
                                    remote: icmp ? d.local : d.remote, hook: d.hook, mark: d.mark, isSyn: d.isSyn,
                                    ctState: d.ctState, icmp: icmp, tcpFlags: icmp ? nil : d.tcpFlags)
        let lookup = firewall.rules?.lookup(packet)

        // Reject or drop: the strongest signal seen decides.
        var reject: Bool
        var rejectWith: String?
        switch method {
        case .clientErrno:
            reject = errno != 110
        case .icmpSend:
            reject = true
        case .retransmission:
            reject = false
        case .singleDrop:
            reject = true
        case .answerDropped:
            reject = false
        }
        if let icmp = a.icmp { rejectWith = icmp.rejectWith }

        // The rule: the best candidate whose verdict agrees with what was seen.
        var rule: FirewallRule?
        var candidates = lookup?.candidates ?? []
        if method == .singleDrop, let best = candidates.first {
            // No signal from the client side: the rule's own verdict is better evidence.
            reject = best.verdict.isReject
        }
        let agreeing = candidates.filter { $0.verdict.isReject == reject }
        if !agreeing.isEmpty { candidates = agreeing }
        rule = candidates.first
        if case .reject(let with)? = rule?.verdict, rejectWith == nil { rejectWith = with }
        if reject, rejectWith == nil, method == .clientErrno, d.family == .ipv4, a.icmp == nil {
            // IPv4 ICMP rejects are seen by icmp_send; ECONNREFUSED without one is a RST.
            rejectWith = "tcp-reset"
        }

        // Only a SYN is answered for the client by a REJECT that it sees as
        // a refusal; other packets (SYN-ACK, data) are dropped for it.
        if !d.isSyn && a.icmp == nil && method != .clientErrno { reject = false }
        // A refusal's answer is shown from the answered SYN's view (the client is the remote end).
        let synView = segment?.isRefusal == true
        var record = Record(ts: clock.epoch(d.ts), kind: reject ? .refusal : .drop,
                            reason: reject ? .firewallReject : .firewallDrop,
                            port: d.servicePort, family: d.family, netns: d.netns,
                            local: synView ? d.serverEnd : d.local, remote: synView ? d.clientEnd : d.remote)
        record.client = a.client.map(processRef)
        // The listener the rule kept the SYN from (the service the operator
        // knows: its process and workload); for the handshake's final ACK,
        // the listener that keeps the request.
        if segment == .ack || (d.isSyn && !synView),
           let l = serverListener(port: d.servicePort, netns: d.netns, family: d.family, server: d.serverEnd.addr,
                                  fromServer: false, direction: d.direction) {
            record.process = l.process
        }
        var ev = FirewallEvidence()
        ev.method = method.rawValue
        ev.clientErrno = errno.map(Int64.init)
        ev.chainHook = d.hook.name
        if reject { ev.rejectWith = rejectWith }
        ev.icmp = a.icmp.map { .object([("type", .int(Int64($0.type))), ("code", .int(Int64($0.code)))]) }
            ?? d.icmpCode.map { Self.icmpJSON(family: d.family, code: $0) }
        ev.mark = d.mark
        // "invalid" only where conntrack tracks the namespace, or a rule matched on it.
        ev.ctState = d.conntrackIdle && rule?.ctStateMatched == nil ? nil : d.ctState.name
        ev.drops = Int64(a.drops)
        if !d.isSyn {
            ev.syn = false
            ev.tcpFlags = Int64(d.tcpFlags)
        }
        ev.segment = segment?.rawValue
        if d.hasSocket { ev.localSocket = true }
        if a.client != nil { ev.clientContext = a.processContext ? "process" : "joined" }
        if let rule {
            record.cause = Self.ruleCause(rule, into: &ev)
            ev.dockerNetworkName = dockerNetworkName(DockerNetworkRule(rule))
            ev.ruleMethod = lookup?.method ?? "ruleset_match"
            if candidates.count > 1 { ev.candidates = candidates.prefix(8).map(Self.candidateJSON) }
        } else if let ipvs = lookup?.ipvs, d.isSyn {
            // No rule: IPVS (which nft does not list) refused what it cannot schedule.
            ev.ruleMethod = "ipvs_service"
            ev.ipvs = ipvs.json
            if ipvs.usable.isEmpty { record.cause = .firewall(.ipvsNoDestination) }
        } else if firewall.rules != nil {
            let unavailable = lookup == nil || lookup?.unavailable != nil
            ev.ruleMethod = unavailable ? "ruleset_unavailable" : "no_match"
            ev.rulesetError = lookup?.unavailable
        }
        ev.hook = "tp_btf/kfree_skb (NETFILTER_DROP)"
        record.evidence = ev.fields
        if rule == nil, d.isSyn, let ipvs = lookup?.ipvs {
            record.hint = ipvsHint(ipvs, record: record, reject: reject)
        } else {
            record.hint = firewallHint(record: record, rule: rule, reject: reject, port: d.servicePort, isSyn: d.isSyn,
                                       segment: segment, interface: d.ifname)
        }
        if let segment, let consequence = segment.consequence {
            record.hint = "the \(segment.text) \(record.remote.map { "of \($0) " } ?? "")was dropped (\(consequence)); " + (record.hint ?? "")
        }
        return record
    }

    /// Docker's rule keeping its networks apart: which container's SYNs,
    /// to where, on which network, and Docker's fix rather than the rule's.
    func dockerNetworkHint(_ docker: DockerNetworkRule, rule: FirewallRule, record: Record, verb: String, what: String,
                           port: UInt16, effect: String) -> String {
        var facts = Advice.Facts(port: port)
        let name = record.firewallEvidence?.dockerNetworkName  // looked up once, with the evidence
        facts.dockerNetwork = name ?? docker.network ?? docker.bridge
        facts.clientContainer = record.client?.workload?.container.map { $0.name ?? $0.shortID }
        let client = record.client.map { c in facts.clientContainer.map { "container \($0)" } ?? "\(c.comm) (pid \(c.pid))" } ?? "a client"
        let bridge = docker.bridge.map { "bridge \($0)" }
        let net: String
        if let name {
            net = name + " (" + ([docker.network.map { "id \($0)" }, bridge].compactMap { $0 }.joined(separator: ", ")) + ")"
        } else if let id = docker.network {
            net = id + (bridge.map { " (\($0))" } ?? "")
        } else {
            net = docker.bridge ?? "another network"
        }
        let to = record.local.map { " to \($0)" } ?? " to port \(port)"
        let at = "rule \"\(rule.shownText)\" in table \(rule.table) chain \(rule.chain)"
        let situation = docker.kind == .isolation
            ? "Docker \(verb) \(what) from \(client)\(to) on network \(net), which it isolates from the client's network\(effect) (\(at)): "
            : "Docker \(verb) \(what) from \(client)\(to) at the edge of internal network \(net)\(effect) (\(at)): "
        return situation + Advice.for(reason: .firewallDrop, cause: .firewall(docker.cause), facts: facts).fix
    }

    /// The name of the Docker network a rule keeps apart, from the configs
    /// of its containers; nil when unknown (or docker0's, `bridge` already).
    func dockerNetworkName(_ docker: DockerNetworkRule?) -> String? {
        guard let id = docker?.network, id != "bridge" else { return nil }
        return resolver?.dockerNetworkName(idPrefix: id)
    }

    /// IPVS refused (or dropped) a SYN for one of its virtual services and no rule matched.
    func ipvsHint(_ ipvs: IPVSService, record: Record, reject: Bool) -> String {
        var facts = Advice.Facts(port: ipvs.endpoint.port)
        facts.ipvsService = ipvs.endpoint.description
        facts.address = ipvs.endpoint.addr
        let inNetns = record.netns.map { " in network namespace \($0)" } ?? ""
        let answer = reject ? "answers its SYNs with ICMP port unreachable" : "drops its SYNs"
        guard ipvs.usable.isEmpty else {
            return "no firewall rule matches, and \(ipvs.endpoint) is IPVS virtual service \(ipvs.label)\(inNetns) "
                + "(scheduler \(ipvs.scheduler), \(ipvs.usable.count) real server\(ipvs.usable.count == 1 ? "" : "s") with weight > 0): "
                + "IPVS \(answer) when it cannot schedule one (servers over their connection threshold, a scheduler that "
                + "found none); ipvsadm -Ln -t \(ipvs.endpoint) --stats shows them"
        }
        let servers = ipvs.destinations.isEmpty ? "no real server" : "no real server with weight > 0 (\(ipvs.destinations.count) quiesced at weight 0)"
        return "IPVS virtual service \(ipvs.label)\(inNetns) (scheduler \(ipvs.scheduler)) has \(servers), so IPVS \(answer); "
            + "no firewall rule is involved: "
            + Advice.for(reason: reject ? .firewallReject : .firewallDrop, cause: .firewall(.ipvsNoDestination), facts: facts).fix
    }

    /// network_policy: the pod named by the rule, else by the listener (its
    /// ingress policies) or the local client (its egress policies).
    func networkPolicyHint(_ policy: NetworkPolicyRule, rule: FirewallRule, record: Record, facts: Advice.Facts,
                           reject: Bool, what: String, effect: String) -> String {
        var facts = facts
        let egress = policy.direction == .fromPod
        facts.networkPolicy(policy, pod: (egress ? record.client : record.process)?.workload?.pod?.qualifiedName)
        let pod = facts.policyPod.map { "pod \($0)" }
            ?? policy.interface.map { "the pod behind interface \($0)" } ?? "the pod of chain \(rule.chain)"
        let situation = egress ? "the egress NetworkPolicies of \(pod) (the client) allow no such connection"
                               : "\(pod) is selected by Kubernetes NetworkPolicies and none of them allows this connection"
        return "\(situation), so \(policy.enforcerName) \(reject ? "rejects" : "drops") \(what) to port \(facts.port ?? 0)\(effect) "
            + "(rule in table \(rule.table) chain \(rule.chain)): "
            + Advice.for(reason: reject ? .firewallReject : .firewallDrop, cause: .firewall(.networkPolicy), facts: facts).fix
    }

    /// A dropped ICMP destination unreachable (IPv4 type 3, ICMPv6 type 1) as evidence `icmp`.
    static func icmpJSON(family: AddressFamily, code: UInt8) -> JSONValue {
        .object([("type", .int(family == .ipv4 ? 3 : 1)), ("code", .int(Int64(code)))])
    }

    /// The rule's fields, and the finer cause it gives (nil: none).
    static func ruleCause(_ rule: FirewallRule, into ev: inout FirewallEvidence) -> RecordCause? {
        ev.table = rule.table
        ev.chain = rule.chain
        ev.handle = rule.handle.map { Int64($0) }
        ev.rule = rule.text
        ev.ruleComment = rule.comment
        ev.ruleOwner = rule.owner?.rawValue
        ev.iptablesRule = rule.iptablesRule
        ev.rulePackets = rule.packets.map { Int64(clamping: $0) }
        if let (service, localOnly) = FirewallOwner.kubeProxyNoEndpoints(rule) {
            ev.service = service
            return .firewall(localOnly ? .serviceWithoutLocalEndpoints : .serviceWithoutEndpoints)
        }
        if let docker = DockerNetworkRule(rule) {
            ev.dockerNetwork = docker.network
            ev.bridge = docker.bridge
            return .firewall(docker.cause)
        }
        guard let verdict = RuleVerdict(rule) else {
            return rule.ctStateMatched == .invalid ? .firewall(.conntrackInvalid) : nil
        }
        switch verdict {
        case .networkPolicy(let policy):
            ev.policyPod = policy.pod
        case .banned(let ban):
            ev.bannedBy = ban.tool.rawValue
            ev.banList = ban.list
        case .rateLimited(let limit):
            ev.rateLimit = limit.limit
            ev.rateLimitPer = limit.per
        }
        return .firewall(verdict.cause)
    }

    /// What a rule that refuses past a limit did, before its fix.
    func rateLimitSituation(_ limit: RateLimitRule, rule: FirewallRule, verb: String, what: String, port: UInt16,
                            client: Endpoint?, effect: String) -> String {
        let who = client.map { "\($0.addr)" } ?? "the client"
        return "rule \"\(rule.shownText)\" in table \(rule.table) chain \(rule.chain)\(rule.handleLabel) \(verb) \(what) to port \(port) "
            + "\(limit.condition), and \(who) went over it\(effect): "
    }

    /// Another rule that matches the packet too.
    static func candidateJSON(_ c: FirewallRule) -> JSONValue {
        var f: [(String, JSONValue)] = [("table", .string(c.table)), ("chain", .string(c.chain))]
        if let h = c.handle { f.append(("handle", .int(Int64(h)))) }
        f.append(("rule", .string(c.text)))
        if let comment = c.comment { f.append(("rule_comment", .string(comment))) }
        return .object(f)
    }

    func firewallHint(record: Record, rule: FirewallRule?, reject: Bool, port: UInt16, isSyn: Bool,
                      segment: HandshakeSegment? = nil, interface: String? = nil) -> String {
        let what: String
        switch segment {
        case .ack?: what = "handshake ACKs"
        case .rst?: what = "RSTs answering SYNs"
        case .icmp?: what = "ICMP errors answering SYNs"
        default: what = isSyn ? "SYNs" : "packets"
        }
        let verb = reject ? "rejects" : "drops"
        // The consequence of a dropped ACK or answer is said before (firewallRecord).
        let effect = reject || segment?.consequence != nil ? "" : " (the client times out)"
        // What was seen; the fix comes from the catalogue (Advice.swift).
        var facts = Advice.Facts(port: port)
        func fix(_ cause: RecordCause? = nil) -> String {
            Advice.for(reason: reject ? .firewallReject : .firewallDrop, cause: cause, facts: facts).fix
        }
        guard let rule else {
            let where_ = record.netns.map { " in network namespace \($0)" } ?? ""
            return "a firewall rule\(where_) \(verb) TCP \(what) to port \(port)\(effect): " + fix()
        }
        if let (service, localOnly) = FirewallOwner.kubeProxyNoEndpoints(rule) {
            facts.serviceName = service
            let at = "rule in table \(rule.table) chain \(rule.chain)" + (rule.element.map { ", element \($0.key) of map \($0.map)" } ?? "")
            if localOnly {
                return "Kubernetes Service \(service) has no ready endpoint on this node and its traffic policy is Local, so kube-proxy "
                    + "\(verb) connections arriving here\(effect) (\(at)): " + fix(.firewall(.serviceWithoutLocalEndpoints))
            }
            return "Kubernetes Service \(service) has no ready endpoints, so kube-proxy \(verb) connections to it "
                + "(\(at)): " + fix(.firewall(.serviceWithoutEndpoints))
        }
        if let docker = DockerNetworkRule(rule) {
            return dockerNetworkHint(docker, rule: rule, record: record, verb: verb, what: what, port: port, effect: effect)
        }
        let verdict = RuleVerdict(rule)
        if case .networkPolicy(let policy)? = verdict {
            return networkPolicyHint(policy, rule: rule, record: record, facts: facts, reject: reject, what: what, effect: effect)
        }
        facts.rule = Advice.Rule(table: rule.table, chain: rule.chain, handle: rule.handle, iptables: rule.iptables,
                                 policyDrop: rule.verdict == .policyDrop, legacy: rule.legacy, saved: rule.saved)
        if rule.ctStateMatched == .invalid {
            return "rule \"\(rule.shownText)\" in table \(rule.table) chain \(rule.chain) \(verb) \(what) to port \(port) that conntrack "
                + "had no entry for (ct state invalid)\(effect): " + fix(.firewall(.conntrackInvalid))
        }
        switch verdict {
        case .banned(let ban)?:
            facts.banned(ban, client: record.remote?.addr)
            return "\(ban.who) banned \(record.remote.map { "\($0.addr)" } ?? "the client"): rule \"\(rule.shownText)\" in table \(rule.table) "
                + "chain \(rule.chain)\(rule.handleLabel) \(verb) its \(what) to port \(port)\(effect): " + fix(.firewall(.addressBanned))
        case .rateLimited(let limit)?:
            // The situation says the limit; the fix names the client to exempt.
            facts.clientAddress = record.remote?.addr
            return rateLimitSituation(limit, rule: rule, verb: verb, what: what, port: port, client: record.remote, effect: effect)
                + fix(.firewall(.rateLimited))
        case .networkPolicy?, nil:
            break
        }
        let owned = rule.owner.map { "; " + $0.advice(port: port, chain: rule.chain, interface: interface) } ?? ""
        let commented = rule.comment.map { " (comment \"\($0)\")" } ?? ""
        if rule.verdict == .policyDrop {
            return "chain \(rule.chain) of table \(rule.table) has policy drop and no rule accepts TCP port \(port)\(effect): " + fix() + owned
        }
        return "rule \"\(rule.shownText)\"\(rule.shownText.contains("comment") ? "" : commented) in table \(rule.table) chain \(rule.chain)\(rule.handleLabel) \(verb) \(what) to port \(port)\(effect): "
            + fix() + owned
    }
}
