import SynsightBase
import SynsightModel
import SynsightNftables
/// `synsight explain <port>`: from the live state of one port (gathered by
/// SynsightKernel) to findings and a verdict. Pure: every input is a value,
/// so each verdict is unit-tested without a kernel.
///
/// Inputs: the port's listening sockets in every network namespace (with
/// queue lengths and the processes holding them, with their fd limits), each
/// namespace's sysctls, TcpExt counters and nftables ruleset, and the records
/// of a short trace. Output: findings (severity, code, message, remediation,
/// evidence) and a verdict (healthy / degraded / broken, summary, actions).

/// A process holding a listening socket.
public struct ExplainProcess: Sendable, Hashable {
    public var pid: UInt32
    public var comm: String
    public var exe: String?
    /// RLIMIT_NOFILE; nil = unlimited. Meaningful only when `limitsKnown`.
    public var nofileSoft: UInt64?
    public var nofileHard: UInt64?
    public var limitsKnown: Bool
    /// Entries of /proc/<pid>/fd.
    public var openFds: Int?
    /// Its cgroup, unit, container, pod.
    public var workload: WorkloadIdentity?
    /// What its threads were doing when read.
    public var runState: ProcessRunState?
    /// The CPU limit over it and its throttling (two readings a moment apart).
    public var cpuThrottle: CPUThrottle?

    public init(pid: UInt32, comm: String, exe: String? = nil, nofileSoft: UInt64? = nil, nofileHard: UInt64? = nil,
                limitsKnown: Bool = false, openFds: Int? = nil) {
        self.pid = pid
        self.comm = comm
        self.exe = exe
        self.nofileSoft = nofileSoft
        self.nofileHard = nofileHard
        self.limitsKnown = limitsKnown
        self.openFds = openFds
    }

    package var label: String { "\(comm) (pid \(pid)" + (workload?.phrase.map { ", " + $0 } ?? "") + ")" }

    /// Open fds at or above the soft limit: the next accept() fails with EMFILE.
    var atFdLimit: Bool {
        guard limitsKnown, let soft = nofileSoft, let open = openFds else { return false }
        return UInt64(open) >= soft
    }

    var nearFdLimit: Bool {
        guard limitsKnown, let soft = nofileSoft, let open = openFds, soft >= 20 else { return false }
        return UInt64(open) * 10 >= soft * 9
    }
}

/// A listening socket on the port.
public struct ExplainListener: Sendable, Hashable {
    public var netns: UInt32
    public var family: AddressFamily
    public var local: Endpoint
    /// IPV6_V6ONLY of an AF_INET6 socket; nil when unknown or IPv4.
    public var ipv6Only: Bool?
    public var inode: UInt64
    /// Connections waiting for accept() and the listen() backlog (sk_max_ack_backlog).
    public var acceptQueue: UInt32?
    public var maxBacklog: UInt32?
    /// Request sockets (SYN received, handshake not complete).
    public var synQueue: UInt32?
    /// Packets the listener dropped (sk_drops), since it was created.
    public var drops: UInt32?
    /// Processes with the socket open (lowest PID first).
    public var processes: [ExplainProcess]
    /// The device it is bound to (SO_BINDTODEVICE, `ip vrf exec`); nil: any
    /// (or not known: /proc does not show it).
    public var boundDevice: NetDevice?

    public init(netns: UInt32, family: AddressFamily, local: Endpoint, ipv6Only: Bool? = nil, inode: UInt64,
                acceptQueue: UInt32? = nil, maxBacklog: UInt32? = nil, synQueue: UInt32? = nil,
                drops: UInt32? = nil, processes: [ExplainProcess] = [], boundDevice: NetDevice? = nil) {
        self.boundDevice = boundDevice
        self.netns = netns
        self.family = family
        self.local = local
        self.ipv6Only = ipv6Only
        self.inode = inode
        self.acceptQueue = acceptQueue
        self.maxBacklog = maxBacklog
        self.synQueue = synQueue
        self.drops = drops
        self.processes = processes
    }

    /// An AF_INET6 socket bound to ::ffff:a.b.c.d takes IPv4 only.
    var takesIPv4: Bool {
        family == .ipv4 || local.addr.isV4Mapped || (local.addr.isUnspecified && ipv6Only == false)
    }

    var takesIPv6: Bool { family == .ipv6 && !local.addr.isV4Mapped }

    package var isLoopback: Bool { local.addr.isLoopback }

    package var owner: String {
        guard let first = processes.first else { return "an unknown process (socket inode \(inode))" }
        return first.label + (processes.count > 1 ? " and \(processes.count - 1) more" : "")
    }

    package var address: String {
        family == .ipv6 && !local.addr.isV4Mapped ? "[\(local.addr)]:\(local.port)" : "\(local.addr):\(local.port)"
    }
}

public struct NetnsSysctls: Sendable, Hashable {
    public var somaxconn: Int?
    public var tcpMaxSynBacklog: Int?
    public var tcpSyncookies: Int?
    public var tcpAbortOnOverflow: Int?
    /// The namespace's conntrack entries and net.netfilter.nf_conntrack_max (nil: conntrack not there).
    public var conntrackCount: Int?
    public var conntrackMax: Int?

    public init(somaxconn: Int? = nil, tcpMaxSynBacklog: Int? = nil, tcpSyncookies: Int? = nil,
                tcpAbortOnOverflow: Int? = nil, conntrackCount: Int? = nil, conntrackMax: Int? = nil) {
        self.conntrackCount = conntrackCount
        self.conntrackMax = conntrackMax
        self.somaxconn = somaxconn
        self.tcpMaxSynBacklog = tcpMaxSynBacklog
        self.tcpSyncookies = tcpSyncookies
        self.tcpAbortOnOverflow = tcpAbortOnOverflow
    }
}

/// The namespace's firewall as read for the port.
public enum FirewallScan: Sendable {
    case ruleset(NftRuleset)
    /// Why the ruleset could not be read.
    case unavailable(String)
}

/// One network namespace of the host.
public struct ExplainNamespace: Sendable {
    public var inode: UInt32
    /// Its name under /run/netns, if any.
    public var name: String?
    /// The init process's namespace (the host's).
    public var isHost: Bool
    /// Processes living in it.
    public var processCount: Int
    public var sysctls: NetnsSysctls
    /// TcpExt counters now, and when the short trace started.
    public var counters: [String: UInt64]
    public var countersAtStart: [String: UInt64]?
    public var firewall: FirewallScan
    /// "sock_diag", or the fallback used and why.
    public var socketSource: String
    /// What could not be read here.
    public var problems: [String]

    public init(inode: UInt32, name: String? = nil, isHost: Bool = false, processCount: Int = 0,
                sysctls: NetnsSysctls = NetnsSysctls(), counters: [String: UInt64] = [:],
                countersAtStart: [String: UInt64]? = nil, firewall: FirewallScan = .unavailable("not read"),
                socketSource: String = "sock_diag", problems: [String] = []) {
        self.inode = inode
        self.name = name
        self.isHost = isHost
        self.processCount = processCount
        self.sysctls = sysctls
        self.counters = counters
        self.countersAtStart = countersAtStart
        self.firewall = firewall
        self.socketSource = socketSource
        self.problems = problems
    }

    /// "network namespace 4026532301 (web)", "the host's network namespace (4026531840)".
    public var label: String {
        if isHost { return "the host's network namespace (\(inode))" }
        return "network namespace \(inode)" + (name.map { " (\($0))" } ?? "")
    }

    /// TcpExt counters of listen-queue trouble, as they grew during the trace.
    public static let overflowCounters = ["ListenOverflows", "ListenDrops", "TCPReqQFullDrop", "TCPReqQFullDoCookies"]

    var countersDelta: [(String, UInt64)] {
        guard let start = countersAtStart else { return [] }
        return ExplainNamespace.overflowCounters.compactMap { k in
            guard let now = counters[k], let then = start[k], now > then else { return nil }
            return (k, now - then)
        }
    }
}

/// The short trace on the port.
public struct RecentActivity: Sendable {
    public enum Status: String, Sendable {
        case ran, skipped, unavailable, failed
    }

    public var status: Status
    public var seconds: Double
    /// Why it was unavailable or failed.
    public var detail: String?
    /// The no-listener hook used.
    public var hook: String?
    public var records: [Record]

    public init(status: Status, seconds: Double = 0, detail: String? = nil, hook: String? = nil, records: [Record] = []) {
        self.status = status
        self.seconds = seconds
        self.detail = detail
        self.hook = hook
        self.records = records
    }

    package var lost: UInt64 { records.filter { $0.kind == .lost }.reduce(0) { $0 + ($1.count ?? 0) } }
    package var events: [Record] { records.filter { $0.kind != .lost } }
    var secondsText: String { ExplainFormat.seconds(seconds) }
}

public struct ExplainInput: Sendable {
    public var port: UInt16
    /// Wall-clock nanoseconds when the state was read.
    public var ts: Int64
    /// The namespace the question is asked from (clients connect from there).
    public var viewpoint: UInt32
    public var namespaces: [ExplainNamespace]
    public var listeners: [ExplainListener]
    public var recent: RecentActivity
    /// Anything that could not be gathered, host-wide.
    public var notes: [String]
    /// Docker containers that publish the port on the host and are not running.
    public var stoppedPublishers: [DockerPortBinding]
    /// Local sockets connecting to the port (SYN_SENT), every namespace.
    public var connecting: [ExplainConnecting]
    /// Running containers' mappings of the port, with what listens at their end.
    public var published: [ExplainPublished]
    /// Every container binding of the port (Docker's running and stopped, Podman's).
    public var publishers: [DockerPortBinding]

    public init(port: UInt16, ts: Int64, viewpoint: UInt32, namespaces: [ExplainNamespace],
                listeners: [ExplainListener], recent: RecentActivity, notes: [String] = [],
                stoppedPublishers: [DockerPortBinding] = [], connecting: [ExplainConnecting] = [],
                published: [ExplainPublished] = [], publishers: [DockerPortBinding] = []) {
        self.stoppedPublishers = stoppedPublishers
        self.publishers = publishers
        self.connecting = connecting
        self.published = published
        self.port = port
        self.ts = ts
        self.viewpoint = viewpoint
        self.namespaces = namespaces
        self.listeners = listeners
        self.recent = recent
        self.notes = notes
    }

    package func namespace(_ inode: UInt32) -> ExplainNamespace? { namespaces.first { $0.inode == inode } }

    package func label(_ inode: UInt32) -> String { namespace(inode)?.label ?? "network namespace \(inode)" }
}

public enum Severity: String, Sendable, Comparable {
    case critical, warning, info

    package var rank: Int {
        switch self {
        case .critical: return 0
        case .warning: return 1
        case .info: return 2
        }
    }

    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
}

/// One thing `explain` found, in plain words, with what to do about it.
public struct Finding: Sendable {
    public var severity: Severity
    /// Stable identifier (documented in README), e.g. `accept_queue_full`.
    public var code: String
    public var message: String
    public var remediation: String?
    public var netns: UInt32?
    public var evidence: [(String, JSONValue)]
    /// Its remediation goes into the verdict's actions (false when another
    /// finding already says what to do about the same problem).
    public var actionable: Bool

    public init(_ severity: Severity, _ code: String, _ message: String, remediation: String? = nil,
                netns: UInt32? = nil, evidence: [(String, JSONValue)] = [], actionable: Bool = true) {
        self.severity = severity
        self.code = code
        self.message = message
        self.remediation = remediation
        self.netns = netns
        self.evidence = evidence
        self.actionable = actionable
    }
}

public struct ExplainReport: Sendable {
    public enum Status: String, Sendable {
        /// Nothing critical or worth a warning.
        case healthy
        /// Works for some clients, or is about to fail (warnings only).
        case degraded
        /// Connections to the port fail now (a critical finding).
        case broken
    }

    public var input: ExplainInput
    /// Most severe first.
    public var findings: [Finding]
    public var status: Status
    public var summary: String
    /// The remediations of critical and warning findings, most severe first, without repeats.
    public var actions: [String]
    /// Firewall rules matching the port, per namespace.
    public var firewall: [UInt32: [PortRuleMatch]]
}

public enum Explain {
    public static func analyze(_ input: ExplainInput) -> ExplainReport {
        var a = Analysis(input: input)
        a.run()
        let findings = a.findings.enumerated()
            .sorted { ($0.element.severity, $0.offset) < ($1.element.severity, $1.offset) }
            .map(\.element)
        let status: ExplainReport.Status = findings.contains { $0.severity == .critical } ? .broken
            : findings.contains { $0.severity == .warning } ? .degraded : .healthy
        var actions: [String] = []
        for f in findings where f.severity != .info && f.actionable {
            if let r = f.remediation, !actions.contains(r) { actions.append(r) }
        }
        let summary: String
        if status == .healthy {
            summary = a.healthySummary()
        } else {
            let serious = findings.filter { $0.severity != .info }
            summary = serious.prefix(2).map(\.message).joined(separator: "; ")
                + (serious.count > 2 ? "; and \(serious.count - 2) more finding\(serious.count == 3 ? "" : "s")" : "")
        }
        return ExplainReport(input: input, findings: findings, status: status, summary: summary,
                             actions: actions, firewall: a.firewall)
    }
}

extension Explain {
    /// Counts request sockets (the SYN queue: handshakes in progress) into
    /// the listener each belongs to: the one bound to the request's address,
    /// else a wildcard one of a family that takes it. The kernel does not
    /// expose the request's listener; with SO_REUSEPORT groups the first
    /// listener of the group gets the count.
    public static func assignSynQueues(_ listeners: inout [ExplainListener],
                                       requests: [(family: AddressFamily, local: Endpoint)]) {
        for r in requests {
            let v4 = r.family == .ipv4 || r.local.addr.isV4Mapped
            func takes(_ l: ExplainListener) -> Bool { v4 ? l.takesIPv4 || (l.family == .ipv6 && l.ipv6Only == nil && l.local.addr.isUnspecified) : l.takesIPv6 }
            let exact = listeners.firstIndex { $0.local.addr == r.local.addr && takes($0) }
            let any = listeners.firstIndex { $0.local.addr.isUnspecified && takes($0) }
            guard let i = exact ?? any else { continue }
            listeners[i].synQueue = (listeners[i].synQueue ?? 0) + 1
        }
    }
}

/// The analysis, one concern per method.
struct Analysis {
    package let input: ExplainInput
    var findings: [Finding] = []
    package var firewall: [UInt32: [PortRuleMatch]] = [:]

    package init(input: ExplainInput) { self.input = input }

    package var port: UInt16 { input.port }

    /// Namespaces with a listener on the port, the viewpoint first.
    var listenerNetns: [UInt32] {
        var seen: [UInt32] = []
        for l in input.listeners where !seen.contains(l.netns) { seen.append(l.netns) }
        return seen.sorted { ($0 != input.viewpoint ? 1 : 0, $0) < ($1 != input.viewpoint ? 1 : 0, $1) }
    }

    package mutating func add(_ f: Finding) { findings.append(f) }

    package mutating func run() {
        presence()
        publishedTargets()
        for ns in listenerNetns {
            addresses(in: ns)
            devices(in: ns)
        }
        queues()
        runStates()
        limits()
        counters()
        sysctls()
        firewallRules()
        unansweredConnects()
        recent()
        for n in input.notes { add(Finding(.info, "incomplete", n)) }
        for ns in input.namespaces {
            for p in ns.problems { add(Finding(.info, "incomplete", "\(ns.label): \(p)", netns: ns.inode)) }
        }
    }

    // MARK: who listens

    /// The last listener, as the short trace saw it go.
    var lastListener: Record? {
        input.recent.events.last {
            $0.reason == .noListener && $0.process != nil
                && ($0.cause == .noListener(.listenerExited) || $0.cause == .noListener(.listenerClosed))
        }
    }

    mutating func presence() {
        stoppedPublishers()
        if input.listeners.isEmpty, lastListener == nil, input.stoppedPublishers.isEmpty,
           !input.recent.events.contains(where: { $0.reason == .noListener }), case let clients = remoteClients, !clients.isEmpty {
            add(notServedHere(clients))
            return
        }
        if input.listeners.isEmpty {
            var msg = "nothing listens on port \(port) on this host (" + ExplainFormat.namespacesScanned(input.namespaces.count) + ")"
            var remediation = Advice.for(reason: .noListener, cause: .noListener(.neverListened), facts: Advice.Facts(port: port)).fix
            var ev: [(String, JSONValue)] = []
            if let last = lastListener, let p = last.process {
                msg += "; the last listener, \(p.comm) pid \(p.pid), "
                if last.cause == .noListener(.listenerExited) {
                    let ev = last.noListenerEvidence
                    if let sig = ev?.signalName {
                        msg += "was killed by \(sig)"
                    } else if let st = ev?.exitStatus {
                        msg += "exited with status \(st)"
                    } else {
                        msg += "exited"
                    }
                } else {
                    msg += "closed its listening socket"
                }
                msg += " (seen by the trace)"
                if let h = last.hint { remediation = h }
                ev.append(("last_listener", p.json))
                ev.append(("cause", .string(last.cause?.rawValue ?? "")))
            }
            let refused = input.recent.events.filter { $0.reason == .noListener }.reduce(0) { $0 + Int($1.count ?? 1) }
            if refused > 0 {
                msg += "; \(refused) connection\(refused == 1 ? "" : "s") refused in the last \(input.recent.secondsText) s"
                ev.append(("refused", .int(Int64(refused))))
            }
            add(Finding(.critical, "not_listening", msg, remediation: remediation, evidence: ev))
            return
        }
        let here = input.listeners.filter { $0.netns == input.viewpoint }
        if here.isEmpty {
            let elsewhere = listenerNetns.map { ns -> String in
                let owners = input.listeners.filter { $0.netns == ns }.map(\.owner)
                return "\(input.label(ns)) (\(Set(owners).sorted().joined(separator: ", ")))"
            }
            add(Finding(.warning, "other_netns_only",
                        "nothing listens on port \(port) in \(input.label(input.viewpoint)); it listens only in \(elsewhere.joined(separator: " and "))",
                        remediation: "clients in \(input.label(input.viewpoint)) cannot reach it on this namespace's addresses: "
                            + Advice.for(reason: .noListener, cause: .noListener(.otherNetns), facts: Advice.Facts(port: port)).fix,
                        netns: input.viewpoint,
                        evidence: [("listener_netns", .array(listenerNetns.map { .int(Int64($0)) }))]))
        }
    }

    /// A stopped container that publishes the port, when nothing listens on
    /// it in the host's namespace: its DNAT rules and proxy (Docker) or port
    /// reservation (Podman) left with it.
    mutating func stoppedPublishers() {
        guard let host = input.namespaces.first(where: \.isHost)?.inode,
              !input.listeners.contains(where: { $0.netns == host }) else { return }
        for c in input.stoppedPublishers {
            var facts = Advice.Facts(port: port)
            facts.publisher(c)
            add(Finding(.critical, NoListenerCause.publisherStopped.rawValue,
                        "\(c.phrase) publishes port \(port) (\(c.published) to its port "
                            + "\(c.containerPort)) but is not running: \(c.how)",
                        remediation: Advice.for(reason: .noListener, cause: .noListener(.publisherStopped), facts: facts).fix,
                        netns: host, evidence: [("container", c.json)]))
        }
    }

    /// The fix for a loopback-only listener; in a container or pod, listening
    /// on all addresses inside it (nothing outside reaches its loopback).
    func loopbackFix(_ l: ExplainListener, port: UInt16) -> String {
        var facts = Advice.Facts(port: port)
        if let holder = l.processes.first?.comm,
           let b = input.publishers.first(where: { ($0.running || $0.runtime == .podman) && $0.heldBy(holder)
               && IPAddress.parse($0.hostIP) == l.local.addr }) {
            // A container published on loopback only: the fix is its -p, not a bind setting.
            facts.publisher(b)
        } else if let kind = l.processes.first?.workload?.isolationKind {
            facts.family = l.family
            facts.listenerAddress = l.local.addr
            facts.listenerWorkload = kind
        }
        return Advice.for(reason: .noListener, cause: .noListener(.boundToOtherAddress), facts: facts).fix
    }

    /// Loopback of one family only: clients of the other ("localhost"
    /// resolved to 127.0.0.1 while the service listens on [::1], as Node.js
    /// 17+ does by default, or the reverse) are refused on the same host.
    mutating func loopbackFamily(_ ls: [ExplainListener], port: UInt16, ns: UInt32, label: String,
                                 evidence ev: [(String, JSONValue)]) {
        guard let first = ls.first else { return }
        let v4 = ls.contains(where: \.takesIPv4), v6 = ls.contains(where: \.takesIPv6)
        guard v4 != v6 else { return }
        let fix = Advice.for(reason: .noListener, cause: .noListener(.familyMismatch),
                             facts: Advice.Facts(port: port, listenerFamily: v6 ? .ipv6 : .ipv4,
                                                 listenerAddress: first.local.addr)).fix
        if v6 {
            add(Finding(.warning, "ipv6_only",
                        "\(first.owner) listens on IPv6 loopback only (\(first.address), \(label)): IPv4 clients of this loopback "
                            + "(127.0.0.1:\(port), what \"localhost\" often resolves to) are refused",
                        remediation: fix, netns: ns, evidence: ev + [("ipv6only", .bool(false))]))
        } else {
            add(Finding(.info, "ipv4_only",
                        "\(first.owner) listens on IPv4 loopback only (\(first.address), \(label)): IPv6 clients of this loopback "
                            + "([::1]:\(port)) are refused",
                        remediation: "if IPv6 clients should connect: " + fix, netns: ns, evidence: ev))
        }
    }

    mutating func addresses(in ns: UInt32) {
        let ls = input.listeners.filter { $0.netns == ns }
        guard let first = ls.first else { return }
        let label = input.label(ns)
        let isHost = input.namespace(ns)?.isHost ?? false
        let list = ls.map(\.address).joined(separator: ", ")
        let ev: [(String, JSONValue)] = [("addresses", .array(ls.map { .string($0.address) }))]
        if ls.allSatisfy(\.isLoopback) {
            add(Finding(.warning, "loopback_only",
                        "\(first.owner) listens on \(list) only (\(label)): unreachable from "
                            + (isHost ? "other hosts" : "other hosts and namespaces") + "; only clients inside \(isHost ? "this host" : "that namespace") can connect",
                        remediation: "if other hosts should connect: " + loopbackFix(first, port: port),
                        netns: ns, evidence: ev))
            loopbackFamily(ls, port: port, ns: ns, label: label, evidence: ev)
            return
        }
        let v4 = ls.filter(\.takesIPv4), v6 = ls.filter(\.takesIPv6)
        if v4.isEmpty {
            let v6only = ls.first { $0.ipv6Only == true && $0.local.addr.isUnspecified }
            if v6only == nil && ls.contains(where: { $0.local.addr.isUnspecified && $0.ipv6Only == nil }) {
                // Family coverage of a [::] socket is unknown without IPV6_V6ONLY.
                return
            }
            let msg = v6only != nil
                ? "IPv6-only socket: \(v6only!.owner) listens on \(v6only!.address) with IPV6_V6ONLY (\(label)): IPv4 clients are refused"
                : "\(first.owner) listens on IPv6 \(list) only (\(label)): IPv4 clients are refused"
            add(Finding(.warning, "ipv6_only", msg,
                        remediation: Advice.for(reason: .noListener, cause: .noListener(.familyMismatch),
                                                facts: Advice.Facts(port: port, listenerFamily: .ipv6,
                                                                    listenerAddress: (v6only ?? first).local.addr)).fix,
                        netns: ns, evidence: ev + [("ipv6only", .bool(v6only != nil))]))
            return
        }
        if v6.isEmpty {
            add(Finding(.info, "ipv4_only", "\(first.owner) listens on IPv4 only (\(list), \(label)): IPv6 clients are refused",
                        remediation: "if IPv6 clients should connect: "
                            + Advice.for(reason: .noListener, cause: .noListener(.familyMismatch),
                                         facts: Advice.Facts(port: port, listenerFamily: .ipv4,
                                                             listenerAddress: first.local.addr)).fix,
                        netns: ns, evidence: ev))
        }
        let wildcard = ls.contains { $0.local.addr.isUnspecified }
        if !wildcard {
            add(Finding(.info, "specific_address",
                        "\(first.owner) listens on \(list) only (\(label)): connections to other addresses of the namespace are refused",
                        remediation: "if clients use other addresses: "
                            + Advice.for(reason: .noListener, cause: .noListener(.boundToOtherAddress), facts: Advice.Facts(port: port)).fix,
                        netns: ns, evidence: ev))
        }
    }

    /// Listeners bound to a device or VRF: SYNs that come in elsewhere,
    /// loopback included, find nobody. A warning when every listener of the
    /// namespace on the port is bound so.
    mutating func devices(in ns: UInt32) {
        let ls = input.listeners.filter { $0.netns == ns }
        let bound = ls.filter { $0.boundDevice != nil }
        guard let first = bound.first, let device = first.boundDevice else { return }
        let label = input.label(ns)
        let all = bound.count == ls.count
        let list = bound.map { "\($0.address)%\($0.boundDevice!.reference)" }.joined(separator: ", ")
        let cause: NoListenerCause = device.isVRF ? .otherVRF : .boundToOtherDevice
        let only = device.isVRF
            ? "in \(device.label) only: clients outside that VRF are refused, loopback included"
            : "bound to device \(device.label) only (SO_BINDTODEVICE): SYNs that come in on other devices, loopback included, are refused"
        let fix = Advice.for(reason: .noListener, cause: .noListener(cause),
                             facts: Advice.Facts(port: port, listenerDevice: device)).fix
        add(Finding(all ? .warning : .info, "bound_to_device",
                    "\(first.owner) listens on \(list) (\(label)), \(only)" + (all ? "" : "; other listeners on the port take the rest"),
                    remediation: (all ? "" : "if clients of other devices should reach it: ") + fix,
                    netns: ns, evidence: [("bound_devices", .array(bound.compactMap { $0.boundDevice?.json }))]))
    }

    // MARK: queues

    package func process(_ pid: UInt32) -> ExplainProcess? {
        for l in input.listeners { if let p = l.processes.first(where: { $0.pid == pid }) { return p } }
        return nil
    }

    func queueEvidence(_ l: ExplainListener, somaxconn: Int?) -> [(String, JSONValue)] {
        var ev: [(String, JSONValue)] = [("listener", .string(l.address))]
        if let q = l.acceptQueue { ev.append(("accept_queue", .int(Int64(q)))) }
        if let m = l.maxBacklog { ev.append(("max_backlog", .int(Int64(m)))) }
        if let s = l.synQueue { ev.append(("syn_queue", .int(Int64(s)))) }
        if let s = somaxconn { ev.append(("somaxconn", .int(Int64(s)))) }
        if let d = l.drops { ev.append(("listener_drops", .int(Int64(d)))) }
        if let p = l.processes.first { ev.append(("pid", .int(Int64(p.pid)))) }
        return ev
    }

    mutating func queues() {
        for l in input.listeners {
            let ns = input.namespace(l.netns)
            let somax = ns?.sysctls.somaxconn
            let label = input.label(l.netns)
            guard let q = l.acceptQueue, let max = l.maxBacklog else { continue }
            let capped = somax.map { $0 > 0 && UInt32($0) == max } ?? false
            let fdBlocked = l.processes.first { $0.atFdLimit }
            if q > max || (q == max && max > 0) {
                let full = q > max
                var msg = "accept queue \(full ? "full" : "at its limit") \(q)/\(max) on \(l.address) (\(label)): "
                let remediation: String
                if let p = fdBlocked {
                    msg += "\(p.label) cannot accept: its open-file limit \(p.nofileSoft.map(String.init) ?? "?") is reached, accept() fails with EMFILE"
                    remediation = Analysis.raiseFdLimit(p)
                } else {
                    msg += "\(l.owner) is not accepting connections" + (full ? "; new connections are dropped" : " fast enough")
                    remediation = Advice.for(reason: .acceptQueueFull, cause: .acceptQueueFull(.listenerNotAccepting),
                                             facts: Advice.Facts(port: port, somaxconnCap: capped ? somax.map { Int32(clamping: $0) } : nil,
                                                                 backlog: max, namespaceLabel: label)).fix
                }
                msg += " (backlog \(max), somaxconn \(somax.map(String.init) ?? "?"))"
                add(Finding(full ? .critical : .warning, full ? "accept_queue_full" : "accept_queue_at_limit", msg,
                            remediation: remediation, netns: l.netns, evidence: queueEvidence(l, somaxconn: somax)))
            }
            guard let sq = l.synQueue else { continue }
            let cookies = ns?.sysctls.tcpSyncookies
            let maxSyn = ns?.sysctls.tcpMaxSynBacklog
            // inet_csk_reqsk_queue_is_full: more request sockets than the backlog;
            // with syncookies off, tcp_conn_request also drops new clients once fewer
            // than a quarter of tcp_max_syn_backlog remain (the kernel's own test).
            let synFull = sq > max
            let backlogs = cookies.flatMap { c in maxSyn.map { SynBacklogSysctls(syncookies: c, maxSynBacklog: $0) } }
            let synPressure = backlogs?.reserveRefuses(synQueue: sq) == true
            if synFull || synPressure {
                var ev = queueEvidence(l, somaxconn: somax)
                if let c = cookies { ev.append(("tcp_syncookies", .int(Int64(c)))) }
                if let m = maxSyn { ev.append(("tcp_max_syn_backlog", .int(Int64(m)))) }
                if cookies == 0 {
                    add(Finding(.critical, "syn_queue_full",
                                (synFull ? "SYN queue full \(sq)/\(max) on \(l.address) (\(label))"
                                    : "SYN queue of \(l.address) (\(label)) at \(sq), past three quarters of net.ipv4.tcp_max_syn_backlog (\(maxSyn ?? 0)), kept for clients the host has talked to before,")
                                    + " and syncookies are off: new SYNs are dropped",
                                remediation: Advice.for(reason: .synQueueFull, cause: .synQueueFull(.syncookiesOff),
                                                        facts: Advice.Facts(namespaceLabel: label)).fix,
                                netns: l.netns, evidence: ev))
                } else {
                    add(Finding(.warning, "syn_queue_full",
                                "SYN queue full \(sq)/\(max) on \(l.address) (\(label)): syncookies keep new connections working (without TCP options)",
                                remediation: Advice.for(reason: .synQueueFull, cause: .synQueueFull(.syncookiesSent)).fix,
                                netns: l.netns, evidence: ev))
                }
            } else if let reserve = backlogs?.reserveStart, reserve <= Int(max) {
                var ev = queueEvidence(l, somaxconn: somax)
                ev.append(("tcp_syncookies", .int(0)))
                ev.append(("tcp_max_syn_backlog", .int(Int64(maxSyn ?? 0))))
                add(Finding(.warning, "syn_backlog_reserve",
                            "syncookies are off in \(label) and \(l.address)'s listen backlog (\(max)) is above three quarters of "
                                + "net.ipv4.tcp_max_syn_backlog (\(maxSyn ?? 0)): from \(reserve) half-open connections on, the kernel drops "
                                + "new clients' SYNs unanswered, before the SYN queue is full (its last quarter is kept for clients it has talked to before)",
                            remediation: Advice.for(reason: .synQueueFull, cause: .synQueueFull(.syncookiesOff),
                                                    facts: Advice.Facts(namespaceLabel: label)).fix,
                            netns: l.netns, evidence: ev))
            }
        }
    }

    /// Listeners whose every process is stopped or blocked in the kernel:
    /// nothing accepts, whatever the queue says yet.
    mutating func runStates() {
        for l in input.listeners {
            let states = l.processes.compactMap(\.runState)
            guard states.count == l.processes.count, let cause = ProcessRunState.cannotRun(states) else { continue }
            let p = l.processes[0]
            let what = cause == .listenerStopped ? "is stopped" : "is blocked in the kernel"
            let waits = Set(states.flatMap(\.waitChannels)).sorted()
            let msg = "\(l.owner) \(what) (\(states[0].summary)\(waits.isEmpty ? "" : ", waiting in " + waits.joined(separator: ", "))): "
                + "nothing accepts on \(l.address) (\(input.label(l.netns))); connections queue until the backlog, then are dropped"
            add(Finding(.critical, cause.rawValue, msg,
                        remediation: Advice.for(reason: .acceptQueueFull, cause: .acceptQueueFull(cause), facts: Advice.Facts(pid: p.pid)).fix,
                        netns: l.netns, evidence: [("listener_state", states[0].json)]))
        }
        throttled()
    }

    /// Listeners whose processes are at their CPU limit: throttled for the
    /// rest of each period, they accept late; with a full queue, not at all.
    mutating func throttled() {
        for l in input.listeners where !l.processes.isEmpty {
            let throttles = l.processes.compactMap(\.cpuThrottle)
            // Every process throttled: one that runs freely can still accept.
            guard throttles.count == l.processes.count, throttles.allSatisfy(\.throttling), let t = throttles.first else { continue }
            let p = l.processes[0]
            let full: Bool
            if let q = l.acceptQueue, let max = l.maxBacklog { full = max > 0 && q >= max } else { full = false }
            let msg = "\(l.owner) is throttled at its CPU limit (\(t.limitPhrase), cgroup \(t.cgroup); \(t.summary)): "
                + (full ? "its accept queue on \(l.address) (\(input.label(l.netns))) is full and new connections are dropped"
                        : "it accepts late on \(l.address) (\(input.label(l.netns))), and a burst overflows its accept queue")
            var facts = Advice.Facts(pid: p.pid)
            facts.cpuThrottle = t
            facts.workload = p.workload
            add(Finding(full ? .critical : .warning, Cause.AcceptQueueFull.listenerThrottled.rawValue, msg,
                        remediation: Advice.for(reason: .acceptQueueFull, cause: .acceptQueueFull(.listenerThrottled), facts: facts).fix,
                        netns: l.netns, evidence: [("cpu_throttle", t.json)]))
        }
    }

    // MARK: limits

    static func raiseFdLimit(_ p: ExplainProcess) -> String {
        Advice.for(reason: .fdExhausted, cause: .fdExhausted(.emfile),
                   facts: Advice.Facts(pid: p.pid, processLabel: p.label, nofileHard: p.nofileHard.map(String.init) ?? "unlimited")).fix
    }

    package mutating func limits() {
        var seen: Set<UInt32> = []
        for l in input.listeners {
            for p in l.processes where !seen.contains(p.pid) {
                seen.insert(p.pid)
                guard p.limitsKnown, let soft = p.nofileSoft, let open = p.openFds else { continue }
                var ev: [(String, JSONValue)] = [("pid", .int(Int64(p.pid))), ("open_fds", .int(Int64(open))),
                                                  ("nofile_soft", .int(Int64(clamping: soft)))]
                ev.append(("nofile_hard", p.nofileHard.map { .int(Int64(clamping: $0)) } ?? .string("unlimited")))
                let raise = Analysis.raiseFdLimit(p)
                if p.atFdLimit {
                    add(Finding(.critical, "fd_limit_reached",
                                "fd limit \(soft) reached: \(p.label) has \(open) open files, so accept() fails with EMFILE and its accept queue on port \(port) cannot drain",
                                remediation: raise, netns: l.netns, evidence: ev))
                } else if p.nearFdLimit {
                    add(Finding(.warning, "fd_limit_near",
                                "\(p.label) has \(open) of \(soft) allowed open files: accept() will fail with EMFILE soon",
                                remediation: raise, netns: l.netns, evidence: ev))
                }
            }
        }
    }

    // MARK: namespace counters and sysctls

    package mutating func counters() {
        guard input.recent.status == .ran else { return }
        for ns in listenerNetns {
            guard let n = input.namespace(ns) else { continue }
            let delta = n.countersDelta
            guard !delta.isEmpty else { continue }
            let text = delta.map { "\($0.0) +\($0.1)" }.joined(separator: ", ")
            add(Finding(.warning, "listen_drops",
                        "the kernel counted listen-queue trouble in \(n.label) during the last \(input.recent.secondsText) s (\(text); counters cover every port of the namespace)",
                        remediation: "see the accept and SYN queue findings of the listeners in that namespace (`nstat -az TcpExtListen*`)",
                        netns: ns, evidence: delta.map { ($0.0, .int(Int64(clamping: $0.1))) }))
        }
    }

    package mutating func sysctls() {
        for ns in listenerNetns {
            guard let n = input.namespace(ns) else { continue }
            if n.sysctls.tcpAbortOnOverflow == 1 {
                add(Finding(.info, "abort_on_overflow",
                            "net.ipv4.tcp_abort_on_overflow=1 in \(n.label): when the accept queue is full, clients get a reset instead of retrying",
                            netns: ns))
            }
            if n.sysctls.tcpSyncookies == 0 {
                add(Finding(.info, "syncookies_off",
                            "net.ipv4.tcp_syncookies=0 in \(n.label): a full SYN queue drops connections instead of answering with cookies",
                            netns: ns))
            }
            conntrackTable(n)
        }
    }

    /// The namespace's conntrack table at (or within 10% of) nf_conntrack_max:
    /// conntrack drops every new connection's first packet when it is full.
    mutating func conntrackTable(_ n: ExplainNamespace) {
        guard let count = n.sysctls.conntrackCount, let max = n.sysctls.conntrackMax, max > 0, count * 10 >= max * 9 else { return }
        let full = count >= max
        var facts = Advice.Facts()
        facts.conntrackMax = UInt32(clamping: max)
        let fix = Advice.for(reason: .packetDropped, cause: .packetDropped(.conntrackFull), facts: facts).fix
        add(Finding(full ? .critical : .warning, "conntrack_table_full",
                    "the conntrack table of \(n.label) holds \(count) of \(ConntrackLimits.maxSysctl)=\(max) entries"
                        + (full ? ": conntrack drops the first packet of every new connection" : ": new connections will be dropped when it fills"),
                    remediation: fix, netns: n.inode,
                    evidence: [EvidenceKey.conntrackCount(.int(Int64(count))), EvidenceKey.conntrackMax(.int(Int64(max)))]))
    }

    // MARK: firewall

    mutating func firewallRules() {
        let listening = Set(listenerNetns)
        for ns in input.namespaces {
            let relevant = listening.contains(ns.inode) || ns.inode == input.viewpoint
            switch ns.firewall {
            case .unavailable(let why):
                if relevant {
                    add(Finding(.info, "firewall_not_checked", "the firewall of \(ns.label) was not checked: \(why)", netns: ns.inode))
                }
            case .ruleset(let rs):
                ipvsServices(rs, ns: ns)
                kubeProxyMapElements(rs, ns: ns)
                var matches = rs.portMatches(port: port)
                if listening.contains(ns.inode) { matches = Self.forLocalListener(matches, dnat: rs.dnatRules(port: port)) }
                guard !matches.isEmpty else { continue }
                firewall[ns.inode] = matches
                let (bans, rest) = foldedBans(matches, ns: ns, listening: listening.contains(ns.inode), sets: rs.sets)
                for f in bans { add(f) }
                for m in rest where m.confidence != .shadowed {
                    add(ruleFinding(m, ns: ns, listening: listening.contains(ns.inode)))
                }
            }
        }
    }

    /// The namespace's IPVS virtual services on the port that IPVS cannot
    /// schedule: every connection to them is refused, with no rule to find.
    mutating func ipvsServices(_ rs: NftRuleset, ns: ExplainNamespace) {
        for svc in rs.ipvs where svc.proto == "TCP" && svc.endpoint.port == port && svc.usable.isEmpty {
            var facts = Advice.Facts(port: port, address: svc.endpoint.addr)
            facts.ipvsService = svc.endpoint.description
            let servers = svc.destinations.isEmpty ? "no real server" : "no real server with weight > 0"
            add(Finding(.critical, FirewallCause.ipvsNoDestination.rawValue,
                        "IPVS virtual service \(svc.label) in \(ns.label) (scheduler \(svc.scheduler)) has \(servers): "
                            + "IPVS refuses every connection to it (ICMP port unreachable), and no firewall rule shows it",
                        remediation: Advice.for(reason: .firewallReject, cause: .firewall(.ipvsNoDestination), facts: facts).fix,
                        netns: ns.inode, evidence: [("ipvs", svc.json)]))
        }
    }

    /// kube-proxy's nftables mode: elements of its `no-endpoint-*` verdict
    /// maps whose key holds the port (a ClusterIP, load-balancer or node
    /// port of a Service without endpoints, or without local ones).
    mutating func kubeProxyMapElements(_ rs: NftRuleset, ns: ExplainNamespace) {
        for map in rs.maps.values where FirewallOwner.recognise(table: "\(map.family) \(map.table)", chain: "") == .kubeProxy {
            for e in map.elements where e.key.contains(.int(Int64(port))) {
                guard let (service, localOnly) = FirewallOwner.kubeProxyNoEndpoints(map: map.name, comment: e.comment, drops: e.drops)
                else { continue }
                let cause: FirewallCause = localOnly ? .serviceWithoutLocalEndpoints : .serviceWithoutEndpoints
                var facts = Advice.Facts(port: port)
                facts.serviceName = service
                let key = NftVerdictMap.keyText(e.key)
                let what = localOnly ? "has no ready endpoint on this node and a Local traffic policy: kube-proxy drops connections to \(key) arriving here"
                                     : "has no ready endpoints: kube-proxy rejects connections to \(key)"
                add(Finding(localOnly ? .warning : .critical, cause.rawValue,
                            "Kubernetes Service \(service) \(what) (element of map \(map.family) \(map.table) \(map.name) in \(ns.label))",
                            remediation: Advice.for(reason: localOnly ? .firewallDrop : .firewallReject, cause: .firewall(cause), facts: facts).fix,
                            netns: ns.inode, evidence: [("service", .string(service)), ("element", .string(key))]))
            }
        }
    }

    /// Connections to a listener of the namespace pass prerouting and input
    /// (and output, postrouting for local clients and the replies), never
    /// forward, which sees only traffic routed through the namespace. So
    /// rules that see forwarded traffic only are left out, unless a DNAT rule
    /// may send the port's connections to another address: then they stay,
    /// as information (see `ruleFinding`), naming the DNAT.
    static func forLocalListener(_ matches: [PortRuleMatch], dnat: [Int]) -> [PortRuleMatch] {
        guard !dnat.isEmpty else { return matches.filter { !$0.forwardedOnly } }
        let handles = dnat.map(String.init).joined(separator: ", ")
        return matches.map { m in
            guard m.forwardedOnly else { return m }
            var m = m
            m.conditions.append("only if the DNAT of handle \(handles) sends the connection to another address")
            return m
        }
    }

    func ruleFinding(_ m: PortRuleMatch, ns: ExplainNamespace, listening: Bool) -> Finding {
        let isViewpoint = ns.inode == input.viewpoint
        // Does the rule stop connections that matter now? Inbound and replies
        // where the port listens; outbound from where the clients are.
        let matters: Bool
        var ceiling: Severity = .critical
        switch m.direction {
        case .inbound: matters = listening && !m.forwardedOnly
        case .reply: matters = (m.refusalsOnly ? !listening : listening) && !m.forwardedOnly
        case .outbound:
            matters = isViewpoint || listening
            if !isViewpoint { ceiling = .warning }
        }
        var severity: Severity
        switch m.confidence {
        case .certain: severity = .critical
        case .conditional: severity = .warning
        case .possible, .shadowed: severity = .info
        }
        if !matters { severity = .info }
        if severity < ceiling { severity = ceiling }

        let what: String
        switch m.direction {
        case .inbound: what = "incoming connections to port \(port)"
        case .reply: what = m.refusalsOnly ? "the RSTs refusing connections to port \(port)" : "the replies of port \(port)'s listener"
        case .outbound: what = "connections from \(ns.label) to port \(port)"
        }
        var msg = "\(m.name) \(m.verb) tcp \(m.direction == .reply ? "sport" : "dport") \(port) (\(what), \(m.confidence.rawValue)"
        if !m.conditions.isEmpty { msg += ": " + m.conditions.joined(separator: "; ") }
        msg += ") in \(ns.label)"
        if m.rule.verdict != .policyDrop { msg += ": \"\(m.rule.shownText)\"" }
        if !m.portSpecific && m.rule.verdict != .policyDrop { msg += " (matches every port)" }

        // The same fix as the record's hint (Advice.swift).
        let rule = Advice.Rule(table: m.rule.table, chain: m.rule.chain, handle: m.rule.handle, iptables: m.rule.iptables,
                               policyDrop: m.rule.verdict == .policyDrop, portMatch: m.direction == .reply ? "sport" : "dport",
                               legacy: m.rule.legacy, saved: m.rule.saved)
        var facts = Advice.Facts(port: port, rule: rule)
        // A NetworkPolicy's verdict, a ban, a limit: the policies, the ban or the limit are the fix, not the rule.
        let verdict = RuleVerdict(m.rule)
        verdict?.facts(&facts)
        let fix = Advice.for(reason: m.rule.verdict.isReject ? .firewallReject : .firewallDrop,
                             cause: verdict.map { .firewall($0.cause) }, facts: facts).fix
        let remediation = m.rule.verdict == .policyDrop
            ? "chain \(m.rule.chain) of table \(m.rule.table) drops what no rule accepts: " + fix
            : fix
        var ev = ExplainFormat.ruleFields(m)
        ev.append(("families", .array(m.families.map { .string($0.rawValue) })))
        if let p = m.rule.packets { ev.append(("packets", .int(Int64(clamping: p)))) }
        if m.rule.iptables { ev.append(("iptables", .bool(true))) }
        if let verdict {
            ev.append(("cause", .string(verdict.cause.rawValue)))
            ev += verdict.evidence.map { ($0.0.rawValue, .string($0.1)) }
        }
        return Finding(severity, m.rule.verdict.isReject ? "firewall_reject" : "firewall_drop", msg,
                       remediation: remediation, netns: ns.inode, evidence: ev)
    }

    // MARK: the short trace

    mutating func recent() {
        let r = input.recent
        switch r.status {
        case .skipped:
            return
        case .unavailable, .failed:
            add(Finding(.info, "trace_unavailable",
                        "the short trace was \(r.status == .failed ? "interrupted" : "unavailable"): \(r.detail ?? "unknown reason"); "
                            + "this explanation rests on the current state only (no recent refusals, no last listener)"))
            return
        case .ran:
            break
        }
        if r.lost > 0 {
            add(Finding(.warning, "events_lost", "\(r.lost) event\(r.lost == 1 ? " was" : "s were") lost during the trace (ring buffer full)",
                        remediation: "the counts below are lower bounds"))
        }
        // One finding per (kind, reason, cause, namespace), latest record as evidence.
        var groups: [(key: String, records: [Record])] = []
        for e in r.events {
            let key = "\(e.kind.rawValue)|\(e.reason?.rawValue ?? "")|\(e.cause?.rawValue ?? "")|\(e.netns ?? 0)"
            if let i = groups.firstIndex(where: { $0.key == key }) { groups[i].records.append(e) } else { groups.append((key, [e])) }
        }
        for g in groups {
            guard let last = g.records.last else { continue }
            let count = g.records.reduce(0) { $0 + Int($1.count ?? 1) }
            let severity: Severity
            switch last.kind {
            case .refusal, .drop, .bindFailure, .denial: severity = .critical
            case .overflow: severity = last.reason == .fdExhausted ? .critical : .warning
            default: severity = .warning
            }
            var msg = "\(count) \(last.kind.rawValue.replacingUnderscores)\(count == 1 ? "" : "s") in the last \(r.secondsText) s: "
                + "\(last.reason?.rawValue ?? "unknown")\(last.cause.map { "/\($0)" } ?? "")"
            if let ns = last.netns { msg += " in \(input.label(ns))" }
            if let p = last.process { msg += ", attributed to \(p.label)" }
            if let c = last.client { msg += ", client \(c.label)" }
            var ev: [(String, JSONValue)] = [("kind", .string(last.kind.rawValue)), ("count", .int(Int64(count)))]
            if let reason = last.reason { ev.append(("reason", .string(reason.rawValue))) }
            if let cause = last.cause { ev.append(("cause", .string(cause.rawValue))) }
            ev.append(("latest", last.json))
            let covered = Analysis.staticCodes(reason: last.reason, cause: last.cause)
            let isCovered = findings.contains { covered.contains($0.code) && $0.severity != .info }
            add(Finding(severity, "recent_refusals", msg, remediation: last.hint, netns: last.netns, evidence: ev,
                        actionable: !isCovered))
        }
    }

    /// The findings on the current state that already explain a traced
    /// refusal (and say what to do about it).
    static func staticCodes(reason: Reason?, cause: RecordCause?) -> Set<String> {
        switch (reason, cause) {
        case (.noListener?, .noListener(.boundToOtherAddress)?): return ["loopback_only", "specific_address"]
        case (.noListener?, .noListener(.familyMismatch)?): return ["ipv6_only"]
        case (.noListener?, .noListener(.otherNetns)?): return ["other_netns_only"]
        case (.noListener?, .noListener(.publisherStopped)?): return ["publisher_stopped"]
        case (.noListener?, .noListener(.boundToOtherDevice)?), (.noListener?, .noListener(.otherVRF)?): return ["bound_to_device"]
        case (.noListener?, _): return ["not_listening"]
        case (.acceptQueueFull?, .acceptQueueFull(.fdExhausted)?), (.fdExhausted?, _): return ["fd_limit_reached"]
        case (.acceptQueueFull?, .acceptQueueFull(.listenerStopped)?): return ["listener_stopped"]
        case (.acceptQueueFull?, .acceptQueueFull(.listenerBlocked)?): return ["listener_blocked"]
        case (.acceptQueueFull?, .acceptQueueFull(.listenerThrottled)?): return ["listener_throttled"]
        case (.acceptQueueFull?, _): return ["accept_queue_full", "accept_queue_at_limit"]
        case (.synQueueFull?, _): return ["syn_queue_full"]
        case (.firewallDrop?, .firewall(.ipvsNoDestination)?), (.firewallReject?, .firewall(.ipvsNoDestination)?):
            return ["ipvs_no_destination"]
        case (.firewallDrop?, _), (.firewallReject?, _): return ["firewall_drop", "firewall_reject"]
        case (.packetDropped?, .packetDropped(.conntrackFull)?): return ["conntrack_table_full"]
        // A timeout explained by a drop here: a firewall finding on the current state covers it.
        case (.connectTimeout?, .connectTimeout(.droppedOnHost)?): return ["firewall_drop", "firewall_reject"]
        default: return []
        }
    }

    // MARK: healthy

    func healthySummary() -> String {
        var parts: [String] = []
        let ls = input.listeners.filter { $0.netns == input.viewpoint }
        let shown = ls.isEmpty ? input.listeners : ls
        if shown.isEmpty {
            // Healthy without a listener: only a port this host uses (notServedHere).
            parts.append("nothing on this host serves port \(port); this host is a client of it (see the findings)")
        }
        if let first = shown.first {
            parts.append("\(first.owner) listens on \(shown.map(\.address).joined(separator: ", ")) (\(input.label(first.netns)))")
            let queues = shown.compactMap { l -> String? in
                guard let q = l.acceptQueue, let m = l.maxBacklog else { return nil }
                return "\(q)/\(m)"
            }
            if !queues.isEmpty { parts.append("accept queue \(queues.joined(separator: ", "))") }
        }
        let checked = listenerNetns.allSatisfy { ns in
            if case .ruleset = input.namespace(ns)?.firewall { return true } else { return false }
        }
        let mayApply = listenerNetns.contains { ns in (firewall[ns] ?? []).contains { $0.confidence != .shadowed } }
        if checked && !shown.isEmpty { parts.append(mayApply ? "only firewall rules that may apply (see the findings)" : "no firewall rule stops it") }
        if input.recent.status == .ran { parts.append("no refusals in the last \(input.recent.secondsText) s") }
        return "healthy: " + parts.joined(separator: "; ")
    }
}

extension String {
    var replacingUnderscores: String { String(map { $0 == "_" ? " " : $0 }) }
}

extension ProcessRef {
    public var jsonValue: JSONValue { json }
}
