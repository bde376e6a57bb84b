import SynsightBase
/// What to do about a (reason, cause): the one advice catalogue. Attribution
/// ends a record's `hint` with `fix` (after saying what it saw), explain uses
/// `fix` as a finding's remediation, and the report lists `steps`. A cause's
/// advice is written here once; DropCause.remediation (DropCause.swift) is the
/// step for each `packet_dropped` cause.
public struct Advice: Sendable, Hashable {
    /// The fix in one clause, filled in from the record's facts.
    public var fix: String
    /// The fix step by step, for the report (generic: `<port>`, `<pid>` unless the facts name them).
    public var steps: [String]

    public init(fix: String, steps: [String]) {
        self.fix = fix
        self.steps = steps
    }

    /// The facts of one record that fill the advice's blanks; all optional.
    public struct Facts: Sendable, Hashable {
        /// The service (or bound) port.
        public var port: UInt16?
        /// The process the advice is about.
        public var pid: UInt32?
        /// The address the client used (or the one asked for).
        public var address: IPAddress?
        /// The family of `address`.
        public var family: AddressFamily?
        /// The family a listener listens for (family_mismatch).
        public var listenerFamily: AddressFamily?
        /// The address it listens on (family_mismatch: a specific IPv6 address
        /// takes no IPv4 connections whatever IPV6_V6ONLY says).
        public var listenerAddress: IPAddress?
        /// "container" or "pod": the kind of workload the listener runs in
        /// (bound_to_other_address on its loopback).
        public var listenerWorkload: String?
        /// The device or VRF the listener is bound to, and where the SYN came
        /// in (bound_to_other_device, other_vrf).
        public var listenerDevice: NetDevice?
        public var synDevice: NetDevice?
        public var synVRF: NetDevice?
        /// The device a failed connect()'s socket is bound to (no_route).
        public var boundDevice: NetDevice?
        /// The Docker network a rule keeps apart (network_isolation,
        /// internal_network), as `docker network` takes it, and the client's
        /// container, as `docker` takes it.
        public var dockerNetwork: String?
        public var clientContainer: String?
        /// `ip route get`'s words for the socket's own lookup keys
        /// (" oif wg0 mark 0x7 uid 1000"; empty: root's lookup is the same).
        public var routeGetKeys = ""
        /// The listener was killed by a signal (listener_exited).
        public var killedBySignal = false
        /// net.core.somaxconn, when it caps the listen backlog (accept_queue_full).
        public var somaxconnCap: Int32?
        /// The failing call was connect(), not bind() (ephemeral_ports_exhausted).
        public var outgoing = false
        /// net.ipv4.ip_unprivileged_port_start (privileged_port).
        public var unprivilegedPortStart: Int?
        /// The caller holds CAP_NET_BIND_SERVICE only in its own user
        /// namespace, not in the one owning the network namespace (privileged_port).
        public var otherUserNamespace = false
        /// The firewall rule that matched (firewall_reject, firewall_drop).
        public var rule: Rule?
        /// "nginx (pid 4410)": the process whose limit is meant.
        public var processLabel: String?
        /// Its hard open-file limit ("unlimited" when it has none).
        public var nofileHard: String?
        /// The listen() backlog in effect.
        public var backlog: UInt32?
        /// The network namespace whose sysctls are meant, as explain names it.
        public var namespaceLabel: String?
        /// The failing socket call.
        public var call: SocketCall?
        /// The TCP state of the socket holding the port (address_in_use; nil: holder not found).
        public var holderState: String?
        /// SELinux: the source domain, the denied permissions, the socket protocol ("tcp").
        public var selinuxDomain: String?
        public var deniedPermissions: [String] = []
        public var socketProtocol: String?
        /// Other LSMs: where to look ("apparmor", "the active LSMs").
        public var lsmsToCheck: String?
        /// The interface holding an address (address_not_available).
        public var device: String?
        /// The container that publishes the port (publisher_stopped,
        /// publisher_not_forwarded, bound_to_other_address), and the host
        /// address it publishes on ("0.0.0.0", "127.0.0.1").
        public var containerName: String?
        public var publishedOn: String?
        /// The runtime of `containerName` (its commands name the fix).
        public var containerRuntime: ContainerRuntime = .docker
        /// The Compose (or Swarm) service of `containerName`: its fix is in
        /// the service's file, applied with `docker compose up`.
        public var containerService: ComposeService?
        /// A rootless container's user: its commands run as that user.
        public var containerOwner: RootlessUser?

        /// The container that publishes the port: its name, where it publishes it, its runtime, its service.
        public mutating func publisher(_ c: DockerPortBinding) {
            containerName = c.label
            publishedOn = c.hostIP
            containerRuntime = c.runtime
            containerService = c.service
            containerOwner = c.rootless
        }
        /// The address is the host's, the bind() was in another namespace (address_not_available).
        public var hostHasAddress = false
        /// The tool owning a cgroup BPF program that refused the call, and the
        /// caller's systemd unit (cgroup_bpf).
        public var bpfOwner: BPFProgramOwner?
        public var unit: String?
        /// A Service without endpoints (or local ones), as kube-proxy names it ("shop/web:http").
        public var serviceName: String?
        /// network_policy: the pod whose NetworkPolicies allow no such connection ("shop/web-1"),
        /// the tool enforcing them ("kube-router", "Calico"), and whether the pod's egress policies decided.
        public var policyPod: String?
        public var policyEnforcer: String?
        public var policyEgress = false
        /// rate_limited: the limiting match and what it counts per;
        /// address_banned: the tool that banned the client and its jail or set.
        public var rateLimit: String?
        public var rateLimitPer: String?
        public var bannedBy: String?
        public var banList: String?
        /// The client a firewall rule refused: the address to exempt or unban.
        public var clientAddress: IPAddress?
        /// Its Kubernetes namespace and name ("shop", "web").
        public var serviceNamespace: String? { serviceName?.split(separator: "/", maxSplits: 1).first.map(String.init) }
        public var serviceShortName: String? {
            guard let parts = serviceName?.split(separator: "/", maxSplits: 1), parts.count == 2 else { return nil }
            return parts[1].split(separator: ":").first.map(String.init)
        }
        /// Where a connection's SYNs left this host: the gateway, or the interface (connect_timeout).
        public var nextHop: String?
        /// net.netfilter.nf_conntrack_max when the table was full (conntrack_full).
        public var conntrackMax: UInt32?
        /// The IPVS virtual service that refused ("TCP 10.96.0.10:80" is shown; `ipvsadm -t` takes "10.96.0.10:80").
        public var ipvsService: String?
        /// The CPU limit that throttles the listener, and the workload it
        /// runs in, which says where the limit is set (listener_throttled).
        public var cpuThrottle: CPUThrottle?
        public var workload: WorkloadIdentity?

        public init(port: UInt16? = nil, pid: UInt32? = nil, address: IPAddress? = nil, family: AddressFamily? = nil,
                    listenerFamily: AddressFamily? = nil, listenerAddress: IPAddress? = nil,
                    listenerDevice: NetDevice? = nil,
                    killedBySignal: Bool = false, somaxconnCap: Int32? = nil,
                    outgoing: Bool = false, unprivilegedPortStart: Int? = nil, rule: Rule? = nil,
                    serviceName: String? = nil, processLabel: String? = nil, nofileHard: String? = nil,
                    backlog: UInt32? = nil, namespaceLabel: String? = nil, call: SocketCall? = nil,
                    holderState: String? = nil, selinuxDomain: String? = nil, deniedPermissions: [String] = [],
                    socketProtocol: String? = nil, lsmsToCheck: String? = nil, nextHop: String? = nil,
                    bpfOwner: BPFProgramOwner? = nil, containerName: String? = nil) {
            self.bpfOwner = bpfOwner
            self.containerName = containerName
            self.port = port
            self.pid = pid
            self.address = address
            self.family = family
            self.listenerFamily = listenerFamily
            self.listenerAddress = listenerAddress
            self.listenerDevice = listenerDevice
            self.killedBySignal = killedBySignal
            self.somaxconnCap = somaxconnCap
            self.outgoing = outgoing
            self.unprivilegedPortStart = unprivilegedPortStart
            self.rule = rule
            self.serviceName = serviceName
            self.processLabel = processLabel
            self.nofileHard = nofileHard
            self.nextHop = nextHop
            self.backlog = backlog
            self.namespaceLabel = namespaceLabel
            self.call = call
            self.holderState = holderState
            self.selinuxDomain = selinuxDomain
            self.deniedPermissions = deniedPermissions
            self.socketProtocol = socketProtocol
            self.lsmsToCheck = lsmsToCheck
        }
    }

    /// Where a firewall rule is, as far as the fix needs it (SynsightNftables'
    /// FirewallRule, reduced to what the commands name).
    public struct Rule: Sendable, Hashable {
        public var table: String
        public var chain: String
        public var handle: Int?
        /// An iptables rule (iptables-nft, or iptables-legacy), not a native nft one.
        public var iptables: Bool
        /// An iptables-legacy rule (table "iptables-legacy filter"): `handle`
        /// is its position in the chain.
        public var legacy: Bool
        /// The chain's policy drops (no rule to delete: an accept rule is missing).
        public var policyDrop: Bool
        /// The match the accept rule needs: `dport` for the service's connections, `sport` for its replies.
        public var portMatch: String
        /// An iptables rule's words as iptables-save wrote them ("-A", chain,
        /// options): `iptables -D` deletes it by them.
        public var saved: [String]?

        public init(table: String, chain: String, handle: Int?, iptables: Bool, policyDrop: Bool, portMatch: String = "dport",
                    legacy: Bool = false, saved: [String]? = nil) {
            self.saved = saved
            self.legacy = legacy
            self.table = table
            self.chain = chain
            self.handle = handle
            self.iptables = iptables
            self.policyDrop = policyDrop
            self.portMatch = portMatch
        }

        /// The iptables command that changes the rule, with its table:
        /// "iptables", "ip6tables -t raw", "iptables-legacy" (the table is
        /// "FAMILY NAME": "ip filter", "ip6 raw", "iptables-legacy filter").
        var iptablesCommand: String {
            let words = table.split(separator: " ").map(String.init)
            let tool = legacy ? (words.first ?? "iptables-legacy") : words.first == "ip6" ? "ip6tables" : "iptables"
            let name = words.count > 1 ? words[1] : "filter"
            return name == "filter" ? tool : "\(tool) -t \(name)"
        }
    }

    /// The advice for a record of `reason` with `cause` (nil: none, or a
    /// cause this version does not know: the reason's general advice).
    public static func `for`(reason: Reason?, cause: RecordCause?, facts: Facts = Facts()) -> Advice {
        switch reason {
        case .noListener?: return noListener(cause, facts)
        case .acceptQueueFull?, .synQueueFull?, .fdExhausted?: return queues(reason, cause, facts)
        case .firewallReject?, .firewallDrop?: return firewall(cause, facts)
        case .lsmDenied?, .addressInUse?, .privilegedPort?, .addressNotAvailable?, .ephemeralPortsExhausted?:
            return calls(reason, cause, facts)
        case .packetDropped?:
            let drop: DropCause
            if case .packetDropped(let c)? = cause { drop = c } else { drop = .other }
            if drop == .conntrackFull { return conntrackFull(facts) }
            return Advice(fix: drop.remediation,
                          steps: [drop.remediation,
                                  "Watch it live with sudo synsight trace --port \(portText(facts)); the evidence names the interface and the kernel function."])
        case .connectTimeout?:
            return connectTimeout(cause, facts)
        case .noRoute?:
            return noRoute(cause, facts)
        case .noRouteBack?:
            return noRouteBack(cause, facts)
        case .resetByPeer?:
            return Advice(fix: "check the server",
                          steps: ["The peer reset the connection: check the peer's logs and its own refusals (run synsight there)."])
        case .unknown?, nil:
            return unknown(cause, facts)
        }
    }

    /// A local connect() failure nothing on this host explains: what to
    /// check depends on how it failed.
    static func unknown(_ cause: RecordCause?, _ f: Facts) -> Advice {
        let live = "run sudo synsight trace --port \(portText(f)) to watch it live."
        let addr = f.address.map { "\($0)" } ?? "<address>"
        switch cause {
        case .unknown(.connectionRefused)?:
            return Advice(fix: "run synsight on that host to know which",
                          steps: ["The peer answered with a reset: nothing listens on the port there, or a firewall rejects. "
                                    + "Run synsight on that host to know which."])
        case .unknown(.rejectedWithICMP)?:
            return Advice(fix: "find the firewall that rejects port \(portText(f)) (iptables -j REJECT answers with icmp-port-unreachable "
                            + "unless told otherwise; nft `reject`): on \(addr) (iptables -S, nft list ruleset, firewall-cmd --list-all) "
                            + "or a router or security appliance between the hosts",
                          steps: ["The SYN was answered with an ICMP port unreachable, not a TCP reset: a host's TCP stack answers a "
                                    + "closed port with a reset, so a firewall rejected it, on \(addr) or on the path.",
                                  "Check the firewall of \(addr) first (run synsight there: it names the rule), then the routers and "
                                    + "appliances between the hosts."])
        case .unknown(.injectedResetSuspected)?:
            return Advice(fix: "a box on the path likely sent it in \(addr)'s name: capture on the path (tcpdump 'tcp[tcpflags] & tcp-rst != 0' "
                            + "on this host, and on \(addr) to see whether it sent one), compare with the server's own view, "
                            + "and check the firewalls, IPS and load balancers between the hosts",
                          steps: ["The reset crossed a different number of hops than the peer's own packets (evidence.reset: ttl, hops, "
                                    + "baseline): something on the path answered in the peer's name, a firewall's `reject with tcp reset`, "
                                    + "an IPS, a load balancer or a spoofer.",
                                  "Capture on the path: on this host (tcpdump -v 'tcp[tcpflags] & tcp-rst != 0' shows each reset's TTL) "
                                    + "and on \(addr): did the server send a reset at all? Run synsight there for its own view.",
                                  "Check the firewalls, IPS and load balancers between the hosts for a rule that rejects this port."])
        case .unknown(.timedOut)?:
            return Advice(fix: "check the path and run synsight on that host",
                          steps: ["Nothing answered: check the path (routes, firewalls between the hosts) and run synsight on the "
                                    + "server, where a drop or a full listen queue would be named.", live])
        case .unknown(.hostUnreachable)?:
            return Advice(fix: "check that the host is up and the address right, and whether a firewall rejects the port with "
                            + "icmp-host-prohibited or admin-prohibited (firewalld's default reject reads \"No route to host\")",
                          steps: ["The host did not answer ARP/NDP, or an ICMP error came back: host unreachable from a router, or "
                                    + "host-prohibited / admin-prohibited from a firewall's reject (firewalld rejects a port it does not "
                                    + "open that way: the client reads \"No route to host\" though the host is up).",
                                  "Check that \(addr) is up and the right address (ping, ip neigh), then its firewall (firewall-cmd "
                                    + "--list-all, nft list ruleset) and the routers between."])
        case .unknown(.networkUnreachable)?:
            return Advice(fix: "check the routing table (ip route get \(addr))",
                          steps: ["No route to the network of \(addr): check the routing table (ip route get \(addr))."])
        default:
            return Advice(fix: "run synsight on the host that refused",
                          steps: ["Read the evidence of the most recent record below; " + live])
        }
    }

    static func connectTimeout(_ cause: RecordCause?, _ f: Facts) -> Advice {
        if case .connectTimeout(.droppedOnHost)? = cause {
            return Advice(fix: "fix that drop as its own record says",
                          steps: ["The connection attempts were dropped on this host, not lost on the way: the drop is in evidence.drop "
                                    + "(the firewall rule, or the kernel's drop reason, location and interface).",
                                  "Fix that drop as its own record says (the firewall_drop or packet_dropped record of the same port, just before)."])
        }
        let from = f.nextHop ?? "the next hop"
        let peer = f.address.map { "\($0)" } ?? "the peer"
        return Advice(fix: "the problem is past this host. Check the path from \(from) on (a firewall or security group there, "
                        + "the peer down or not listening), and run synsight on \(peer) if you can",
                      steps: ["The SYNs left this host (evidence: egress_interface, next_hop, syn_retransmits) and nothing came back: "
                                + "the problem is past this host.",
                              "Check that the route is the intended one (ip route get <destination>); then the path from the next hop on: "
                                + "a firewall or security group dropping, the peer down, or nothing listening there (run synsight on the peer)."])
    }

    static func portText(_ f: Facts) -> String { f.port.map(String.init) ?? "<port>" }
    static func pidText(_ f: Facts) -> String { f.pid.map(String.init) ?? "<pid>" }

    static func noListener(_ cause: RecordCause?, _ f: Facts) -> Advice {
        let port = portText(f)
        guard case .noListener(let c)? = cause else { return neverListened(port) }
        switch c {
        case .neverListened:
            return neverListened(port)
        case .listenerExited:
            return Advice(fix: workloadExitedFix(f) ?? (f.killedBySignal
                            ? "restart the service and find out who sent the signal (OOM killer: dmesg; supervisor: journalctl)"
                            : "restart the service and check its logs for why it exited"),
                          steps: ["Find why the service exited (journalctl -u <unit>, dmesg for the OOM killer, the exit signal in the evidence).",
                                  "Restart it, and make the supervisor restart it (systemd Restart=on-failure, a liveness probe).",
                                  "Keep clients from hammering a dead port: retries with backoff, health-checked load balancing."])
        case .listenerClosed:
            return Advice(fix: "check its logs (reload, shutdown in progress, lost configuration) and restart or reconfigure it",
                          steps: ["The service closed its listening socket: check for a reload or a graceful shutdown that did not finish.",
                                  "Restart the service; for zero-downtime reloads hand the socket over (systemd socket activation, SO_REUSEPORT)."])
        case .boundToOtherAddress:
            let wildcard = f.family.map { $0 == .ipv6 ? "[::]" : "0.0.0.0" } ?? "0.0.0.0 (or [::] for IPv4 and IPv6)"
            let fix: String
            if let c = f.containerName, let on = f.publishedOn, let service = f.containerService, service.orchestrator == .compose {
                // A Compose container is re-created from its file, not with `docker run`.
                fix = "publish the port on the address clients use in the ports: of \(service.definedIn) (\"\(port):<container port>\" "
                    + "for every address, or \"\(f.address.map { "\($0)" } ?? "<address>"):\(port):<container port>\"), then "
                    + "\(service.upCommand(runtime: f.containerRuntime)); container \(c) publishes it on \(on) only"
            } else if let c = f.containerName, let on = f.publishedOn {
                // A container published on one host address: the fix is its -p, not a bind setting.
                fix = "publish the port on the address clients use: \(f.containerRuntime.rawValue) run -p \(port):<container port> (every address) or "
                    + "-p \(f.address.map { "\($0)" } ?? "<address>"):\(port):<container port> (compose: ports:), re-creating "
                    + "container \(c); it is published on \(on) only"
            } else if let kind = f.listenerWorkload, f.listenerAddress?.isLoopback == true {
                // Nothing outside a container reaches its loopback: "connect to
                // the address it listens on" is no fix for a published port.
                fix = "make it listen on \(wildcard):\(port) inside the \(kind) (its listen or bind setting, e.g. --host 0.0.0.0): "
                    + "the \(kind)'s loopback takes connections from inside the \(kind) only, and a published port or a Service "
                    + "arrives at the \(kind)'s own address\(f.address.map { " (\($0))" } ?? "")"
            } else {
                fix = "bind the service to \(wildcard) or to \(f.address.map { "\($0)" } ?? "the address clients use"), "
                    + "or connect to the address it listens on"
            }
            return Advice(fix: fix,
                          steps: ["Fix the bind address: listen on 0.0.0.0/:: or the address clients use, not 127.0.0.1 or another interface.",
                                  "Check the service's listen/bind setting and restart it; verify with ss -ltnp."])
        case .familyMismatch:
            return Advice(fix: familyMismatchFix(f, port),
                          steps: ["The listener is IPv4-only or IPv6-only: listen on both (:: with net.ipv6.bindv6only=0, or two sockets).",
                                  "Or point clients at the family the service listens on (check DNS A/AAAA records, and what "
                                    + "\"localhost\" resolves to on each side: /etc/hosts, getent ahosts localhost)."])
        case .otherNetns:
            return Advice(fix: "connect from inside that namespace or to an address routed to it, publish the port (container port mapping), "
                            + "or run the service in this namespace",
                          steps: ["The service listens in another network namespace (container/pod): publish the port or connect to the namespace's address.",
                                  "Check the container's port mapping and the pod's Service/targetPort."])
        case .wrongPort:
            return Advice(fix: "connect to (or publish) the port it listens on, or make it listen on \(port) "
                            + "(a container port mapped to the wrong port is the usual cause)",
                          steps: ["The service in that container, pod or namespace listens on another port (named in the evidence): "
                                    + "fix the port mapping (docker run -p HOST:CONTAINER, the Service's targetPort) or the service's listen port.",
                                  "Verify inside the namespace with nsenter -n -t \(pidText(f)) ss -ltnp."])
        case .boundToOtherDevice:
            return Advice(fix: boundDeviceFix(f, port),
                          steps: ["The listener is bound to one network device (SO_BINDTODEVICE; a bind-interface or device setting "
                                    + "of the service): the kernel gives it only SYNs that arrive on that device.",
                                  "Remove the device binding (or bind to the device clients come in on), or have clients connect "
                                    + "through that device's network; check with ss -ltnp (the %device after the address)."])
        case .publisherStopped:
            let c = f.containerName ?? "<container>"
            if let service = f.containerService {
                return composePublisherStopped(service, container: c, runtime: f.containerRuntime)
            }
            if let owner = f.containerOwner {
                return rootlessPublisherStopped(owner, container: c, runtime: f.containerRuntime)
            }
            if f.containerRuntime == .podman {
                return Advice(fix: "start it (podman start \(c)) and find why it stopped (podman logs \(c), podman inspect \(c) --format "
                                + "'{{json .State}}'); give it a restart policy (podman run --restart=always, or run it from a Quadlet or "
                                + "systemd unit)",
                              steps: ["The port is published by a Podman container that is not running: its port reservation (held by "
                                        + "its conmon) and its DNAT rules left with it, so the host refuses the port.",
                                      "Start it and read why it stopped (exit code, OOM kill: podman inspect); set a restart policy "
                                        + "or run it under systemd."])
            }
            return Advice(fix: "start it (docker start \(c)) and find why it stopped (docker logs \(c), docker inspect \(c) --format '{{json .State}}'); "
                            + "give it a restart policy (docker update --restart unless-stopped \(c))",
                          steps: ["The port is published by a Docker container that is not running: its DNAT rules and docker-proxy "
                                    + "left with it, so the host refuses the port.",
                                  "Start it and read why it stopped (exit code, OOM kill: docker inspect); set a restart policy "
                                    + "or run it under a supervisor."])
        case .starting:
            return Advice(fix: startingFix(f),
                          steps: ["The container or pod living in the namespace started moments before the SYN and listens on "
                                    + "nothing yet: the client connected before the service was ready (startup ordering).",
                                  "Make clients wait for readiness (a health check or readiness probe gating them) and retry "
                                    + "connections with backoff; if it never comes to listen on the port, check its configuration and logs."])
        case .publisherNotForwarded:
            let c = f.containerName ?? "<container>"
            return Advice(fix: "make Docker forward it again: restart the Docker daemon (it re-creates its DNAT rules and docker-proxy) "
                            + "or the container (docker restart \(c)), and find what removed them: a firewall reload or flush "
                            + "(firewall-cmd --reload, ufw reload, iptables-restore or iptables -F, nft flush ruleset) — with firewalld, "
                            + "put Docker's bridge in its docker zone; check with iptables -t nat -S DOCKER | grep \(port) and pgrep -a docker-proxy",
                          steps: ["A running container publishes the port, but nothing on the host takes it: Docker's DNAT rules for it "
                                    + "(and its docker-proxy, if the daemon uses one) are gone.",
                                  "Restart the daemon or the container to restore them, and stop whatever flushes Docker's rules "
                                    + "(a firewall reload, an iptables-restore of a saved ruleset, a tool that flushes nftables)."])
        case .otherVRF:
            return Advice(fix: otherVRFFix(f, port),
                          steps: ["The listener and the SYN are in different VRFs: a socket in the default VRF takes SYNs that came "
                                    + "through a VRF only with net.ipv4.tcp_l3mdev_accept=1; a socket bound to a VRF (ip vrf exec) "
                                    + "takes only that VRF's.",
                                  "Run the service in the clients' VRF (ip vrf exec <vrf> <command>), or set net.ipv4.tcp_l3mdev_accept=1 "
                                    + "so a default-VRF service serves every VRF; check with ss -ltnp (the %vrf after the address)."])
        case .restarting:
            return Advice(fix: "traffic reaches it before it is ready; wait for it, or route only to ready instances "
                            + "(readiness probe, systemd Type=notify, a health-checked load balancer)",
                          steps: ["The service was restarted and its new process does not listen yet: traffic reaches it before it is ready.",
                                  "Route only to ready instances (readiness probe, systemd Type=notify, a health-checked load balancer), "
                                    + "and find why the previous process exited (evidence.previous)."])
        }
    }

    /// Where a listener that exited is read about and restarted, in the
    /// terms of what runs it: a pod's container, a Compose service, a
    /// container, a systemd unit. nil: none known.
    static func workloadExitedFix(_ f: Facts) -> String? {
        let why = f.killedBySignal ? "who killed it (the OOM killer: dmesg; its supervisor)" : "why it exited"
        guard let w = f.workload else { return nil }
        if let pod = w.pod, let name = pod.name {
            let ns = pod.namespace.map { "-n \(ShellWord.quoted($0)) " } ?? ""
            let c = pod.container.map { " -c \(ShellWord.quoted($0))" } ?? ""
            return "find \(why) (kubectl logs \(ns)\(ShellWord.quoted(name))\(c) --previous; kubectl describe pod "
                + "\(ns)\(ShellWord.quoted(name)): last state, OOMKilled, liveness probe); kubelet restarts it by its restartPolicy"
        }
        if let c = w.container, c.runtime == .lxc {
            let name = ShellWord.quoted(c.id)
            let inside = w.unit.map { "journalctl -u \(ShellWord.quoted($0)), systemctl restart \(ShellWord.quoted($0))" }
                ?? "its service's logs, and restart it"
            return "find \(why) inside container \(name) and restart it there (lxc-attach -n \(name) --, or lxc exec / "
                + "incus exec \(name) -- for LXD and Incus, pct enter on Proxmox: \(inside))"
        }
        if let c = w.container, let label = c.name {
            let tool = (c.runtime ?? .docker).cli
            let name = ShellWord.quoted(label)
            if let service = c.service, service.orchestrator == .compose {
                return "find \(why) (\(tool) logs \(name), \(tool) inspect \(name) --format '{{json .State}}') and bring "
                    + "\(service.phrase) back (\(service.upCommand(runtime: c.runtime ?? .docker)); a process that died inside a "
                    + "running container needs \(tool) restart \(name)); a restart policy (restart: in \(service.definedIn)) "
                    + "restarts it only when the container's main process exits"
            }
            return "find \(why) (\(tool) logs \(name), \(tool) inspect \(name) --format '{{json .State}}') and restart it "
                + "(\(tool) restart \(name)); a restart policy (\(tool) update --restart unless-stopped \(name)) restarts it only "
                + "when the container's main process exits"
        }
        // A .scope (a login session, a container) is not restarted by systemctl.
        if let unit = w.unit, unit.hasSuffix(".service"), !unit.hasPrefix("user@") {
            let u = ShellWord.quoted(unit)
            let user = w.userManager != nil ? "--user " : ""
            return "find \(why) (journalctl \(user)-u \(u)) and restart it (systemctl \(user)restart \(u)); "
                + "make systemd restart it (Restart=on-failure in the unit)"
        }
        return nil
    }

    /// A client that came before its service was ready, in the terms of
    /// what runs the service (starting).
    static func startingFix(_ f: Facts) -> String {
        let retry = "and make the client retry with backoff"
        if let pod = f.workload?.pod {
            return "give pod \(pod.label) a readinessProbe (Services send connections only to ready pods) and a startupProbe "
                + "if it starts slowly, \(retry)"
        }
        if let c = f.workload?.container {
            if let service = c.service, service.orchestrator == .compose {
                return "make its clients wait until \(service.phrase) is ready: a healthcheck: on it and depends_on: "
                    + "{\(service.name): {condition: service_healthy}} on theirs (\(service.definedIn)), \(retry)"
            }
            if c.runtime == .lxc {
                return "start the client once the service in container \(ShellWord.quoted(c.id)) listens (a systemd unit ordering, "
                    + "a wait-for-port in the client's start), \(retry)"
            }
            let tool = (c.runtime ?? .docker).cli
            let name = c.name.map { ShellWord.quoted($0) } ?? c.shortID
            return "start the client once container \(name) is ready (a HEALTHCHECK, waited for with \(tool) inspect "
                + "--format '{{.State.Health.Status}}' \(name)), \(retry)"
        }
        return "start the client once the service is ready (systemd: Type=notify and After= on the client's unit), \(retry)"
    }

    /// A stopped container of a Compose or Swarm service: brought back with
    /// its service, and given a restart policy in its file.
    static func composePublisherStopped(_ service: ComposeService, container c: String, runtime: ContainerRuntime) -> Advice {
        let tool = runtime.cli
        let policy = service.orchestrator == .compose
            ? "give the service a restart policy (restart: unless-stopped in \(service.definedIn))"
            : "check the service's restart policy (docker service inspect --format '{{json .Spec.TaskTemplate.RestartPolicy}}' \(ShellWord.quoted(service.name)))"
        return Advice(fix: "bring \(service.phrase) up again (\(service.upCommand(runtime: runtime))) and find why container \(c) "
                        + "stopped (\(tool) logs \(c), \(tool) inspect \(c) --format '{{json .State}}'); \(policy)",
                      steps: ["The port is published by a container of \(service.phrase) that is not running: its forwarding left "
                                + "with it, so the host refuses the port.",
                              "Bring the service up and read why it stopped (exit code, OOM kill: \(tool) inspect); set a restart policy "
                                + "in its definition, not on the container (a re-created container loses docker update's)."])
    }

    /// A rootless container that publishes the port is not running: started
    /// as its user (rootless Docker's CLI through the user's own daemon's
    /// socket), kept running past the user's last logout (lingering).
    static func rootlessPublisherStopped(_ owner: RootlessUser, container c: String, runtime: ContainerRuntime) -> Advice {
        let u = ShellWord.quoted(owner.name)
        let tool = runtime == .podman ? "podman" : "docker -H unix://\(owner.dockerSocket)"
        let (forwarder, daemon) = runtime == .podman
            ? ("rootlessport, pasta or slirp4netns", "")
            : ("rootlesskit or slirp4netns", "; if that socket is gone, the user's rootless dockerd is not running either (systemctl --user start docker, "
                + "in a session of \(owner.name)'s)")
        let unit = runtime == .podman ? "run it from a Quadlet or user unit with a restart policy"
            : "give it a restart policy (docker update --restart unless-stopped \(c), as the user) and enable the user's docker.service"
        let asUser = "runuser -u \(u) -- \(tool)"
        return Advice(fix: "start it as user \(owner.name) (\(asUser) start \(c)\(daemon)) and find why it stopped "
                        + "(\(asUser) logs \(c), \(asUser) inspect \(c) --format '{{json .State}}'); a rootless container "
                        + "stops with its user's last session unless lingering is on (loginctl enable-linger \(u)): \(unit)",
                      steps: ["The port is published by user \(owner.name)'s rootless \(runtime == .podman ? "Podman" : "Docker") container, "
                                + "which is not running: its port forwarder in the host's namespace (\(forwarder)) left with it, so the host refuses the port.",
                              "Start it as that user and read why it stopped; keep it running past logouts (loginctl "
                                + "enable-linger) under a user unit with a restart policy."])
    }

    /// A listener bound to one device, the SYN in on another.
    static func boundDeviceFix(_ f: Facts, _ port: String) -> String {
        let bound = f.listenerDevice?.reference ?? "its device"
        // Binding to the loopback instead is no fix: then only this host connects.
        let instead = f.synDevice.flatMap { $0.isLoopback ? nil : ", or bind it to \($0.reference), where the SYN came in" } ?? ""
        return "remove its device binding (SO_BINDTODEVICE \(bound), the service's bind-interface setting) so it takes "
            + "connections from every device\(instead), or have clients reach port \(port) through \(bound) (an address routed over it)"
    }

    /// The listener and the SYN in different VRFs.
    static func otherVRFFix(_ f: Facts, _ port: String) -> String {
        if let vrf = f.synVRF, f.listenerDevice == nil {
            return "run the service in VRF \(vrf.reference) (ip vrf exec \(vrf.reference) <command>), or let default-VRF sockets "
                + "take SYNs from every VRF: sysctl -w net.ipv4.tcp_l3mdev_accept=1 (it applies to listeners at once)"
        }
        let bound = f.listenerDevice?.reference ?? "<vrf>"
        return "connect from VRF \(bound) (ip vrf exec \(bound) <client>) or to an address routed through it, or run the "
            + "service in the default VRF with net.ipv4.tcp_l3mdev_accept=1 so it serves port \(port) in every VRF"
    }

    static func neverListened(_ port: String) -> Advice {
        Advice(fix: "start the service, or check that the client uses the right port and address",
               steps: ["Nothing listens on this port: start the service (or its socket unit), or fix the client's port.",
                       "Check that the service's configured port matches what clients use; verify with ss -ltnp."])
    }

    static func fdSteps(_ f: Facts) -> [String] {
        ["The process ran out of file descriptors: raise its limit (systemd LimitNOFILE=, ulimit -n).",
         "Look for a descriptor leak (ls /proc/\(pidText(f))/fd | wc -l over time); check fs.file-max for ENFILE."]
    }

    /// The fix for a process at its open-file limit (EMFILE).
    static func raiseFdLimit(_ f: Facts) -> String {
        "raise the open-file limit\(f.processLabel.map { " of " + $0 } ?? "") (LimitNOFILE= in its systemd unit, ulimit -n"
            + (f.nofileHard.map { ", up to the hard limit \($0)" } ?? "")
            + "), or find its fd leak (ls -l /proc/\(f.pid.map(String.init) ?? "<pid>")/fd)"
    }

    static func queues(_ reason: Reason?, _ cause: RecordCause?, _ f: Facts) -> Advice {
        let inNamespace = f.namespaceLabel.map { " in " + $0 } ?? ""
        switch cause {
        case .acceptQueueFull(.listenerStopped)?:
            let pid = f.pid.map(String.init) ?? "<pid>"
            return Advice(fix: "resume it (kill -CONT \(pid)) and find who stopped it: a debugger or tracer attached "
                            + "(grep TracerPid /proc/\(pid)/status), a SIGSTOP or SIGTSTP (a job control ^Z, a supervisor's pause, docker pause)",
                          steps: ["Every thread of the listening process is stopped: it accepts nothing until it is resumed.",
                                  "Resume it (kill -CONT <pid>, docker unpause, detach the debugger) and find who stopped it."])
        case .acceptQueueFull(.listenerBlocked)?:
            let pid = f.pid.map(String.init) ?? "<pid>"
            return Advice(fix: "find what its threads wait for (cat /proc/\(pid)/task/*/stack as root; a hung NFS or FUSE mount, "
                            + "a failing disk, a kernel lock): the service resumes accepting when that returns",
                          steps: ["No thread of the listening process can run: all are in uninterruptible sleep in the kernel (state D).",
                                  "Read where they wait (the wait channels in the evidence, /proc/<pid>/task/*/stack) and fix that: "
                                    + "an unreachable NFS server, a dying disk, a stuck FUSE daemon."])
        case .acceptQueueFull(.listenerThrottled)?:
            return Advice(fix: raiseCPULimit(f),
                          steps: ["The listening process is at the CPU limit of its cgroup: once its quota is spent the kernel takes it "
                                    + "off the CPU for the rest of each period, and its accept loop falls behind.",
                                  "Raise or remove the limit where it is set (docker update --cpus, a pod's resources.limits.cpu, "
                                    + "systemd CPUQuota=), or make the service use less CPU; watch nr_throttled in the cgroup's cpu.stat."])
        case .acceptQueueFull(.fdExhausted)?:
            return Advice(fix: raiseFdLimit(f),
                          steps: ["The service cannot accept: accept() fails with EMFILE/ENFILE, so its accept queue fills up."] + fdSteps(f))
        case .fdExhausted(.enfile)?:
            return Advice(fix: "raise fs.file-max, or find the process leaking files", steps: fdSteps(f))
        case .synQueueFull(.syncookiesOff)?:
            return Advice(fix: "enable net.ipv4.tcp_syncookies=1\(inNamespace), raise the listen() backlog and net.ipv4.tcp_max_syn_backlog, "
                            + "and look for a SYN flood or clients that never finish the handshake",
                          steps: synSteps)
        default:
            break
        }
        switch reason {
        case .synQueueFull?:
            return Advice(fix: "raise the listen() backlog and look for a SYN flood or clients that never finish the handshake", steps: synSteps)
        case .fdExhausted?:
            return Advice(fix: raiseFdLimit(f), steps: fdSteps(f))
        default:
            return Advice(fix: "speed up or add workers to its accept loop, and raise the listen() backlog"
                            + (f.backlog.map { " (now \($0))" } ?? "")
                            + (f.somaxconnCap.map { " and net.core.somaxconn\(inNamespace) (the backlog is capped at somaxconn \($0))" } ?? ""),
                          steps: ["The service does not accept connections fast enough: fix the slow accept loop (blocked event loop, too few workers/threads).",
                                  "Raise the listen backlog in the service and net.core.somaxconn (the backlog is capped by it).",
                                  "Check for fd exhaustion behind it (EMFILE on accept) and for CPU starvation of the process."])
        }
    }

    /// Where the CPU limit of a throttled listener is raised, by the kind of
    /// workload that set it.
    static func raiseCPULimit(_ f: Facts) -> String {
        let now = f.cpuThrottle.map { " (now \($0.limitPhrase))" } ?? ""
        let w = f.workload
        if let pod = w?.pod {
            let container = pod.container.map { " of container \($0)" } ?? ""
            return "raise or remove resources.limits.cpu\(container) in pod \(pod.label)'s spec\(now), "
                + "or give it more replicas: throttled, it accepts nothing for the rest of each period"
        }
        if let c = w?.container, let service = c.service, service.orchestrator == .compose {
            return "raise or remove cpus: (or deploy.resources.limits.cpus) of \(service.definedIn)\(now), then "
                + "\(service.upCommand(runtime: c.runtime ?? .docker)) (docker update --cpus on container \(c.name ?? c.shortID) "
                + "lasts until Compose re-creates it)"
        }
        if let c = w?.container, c.runtime == .lxc {
            return "raise or remove container \(ShellWord.quoted(c.id))'s CPU limit\(now): lxc.cgroup2.cpu.max (lxc.cgroup.cpu.cfs_quota_us) "
                + "in its config, lxc config set / incus config set \(ShellWord.quoted(c.id)) limits.cpu for LXD and Incus, pct set --cpulimit on Proxmox"
        }
        if let c = w?.container {
            return "raise or remove the container's CPU limit\(now): docker update --cpus <more> \(c.name ?? c.shortID) "
                + "(or --cpus in its run command or compose file's cpus:)"
        }
        if let unit = w?.unit {
            return "raise or remove CPUQuota= of \(unit)\(now): systemctl set-property \(unit) CPUQuota=<more>% "
                + "(or the unit's slice, if the limit is there)"
        }
        let file = f.cpuThrottle.map { $0.hierarchy == .v2 ? "cpu.max of cgroup \($0.cgroup)" : "cpu.cfs_quota_us of cgroup \($0.cgroup)" }
        return "raise or remove the CPU limit\(now) in \(file ?? "the process's cgroup") (whoever manages that cgroup sets it)"
    }

    static let synSteps = ["Likely a SYN flood or a burst: keep net.ipv4.tcp_syncookies=1.",
                           "Raise net.ipv4.tcp_max_syn_backlog and the listen backlog/net.core.somaxconn.",
                           "If it is an attack, rate-limit SYNs upstream (firewall, load balancer)."]

    /// The namespace's conntrack table was full (packet_dropped/conntrack_full).
    static func conntrackFull(_ f: Facts) -> Advice {
        let raise = f.conntrackMax.map { "sysctl -w net.netfilter.nf_conntrack_max=\(UInt64($0) * 2)" }
            ?? "sysctl -w net.netfilter.nf_conntrack_max=<larger>"
        return Advice(fix: "raise the table's size (\(raise), and the hash size with it: "
                        + "echo <max/4> > /sys/module/nf_conntrack/parameters/hashsize), shorten the timeouts that keep entries "
                        + "(net.netfilter.nf_conntrack_tcp_timeout_established, _time_wait), and find who fills it "
                        + "(conntrack -C; conntrack -L | awk '{print $5}' | sort | uniq -c | sort -n)",
                      steps: [DropCause.conntrackFull.remediation,
                              "See the use: conntrack -C (or /proc/sys/net/netfilter/nf_conntrack_count) against net.netfilter.nf_conntrack_max; "
                                + "the kernel logs \"nf_conntrack: table full, dropping packet\".",
                              "Raise the limit (\(raise); persist it in /etc/sysctl.d) and the hash size "
                                + "(/sys/module/nf_conntrack/parameters/hashsize, about max/4).",
                              "Find who fills it: conntrack -L | awk '{print $5}' | sort | uniq -c | sort -n (entries by source); "
                                + "shorten nf_conntrack_tcp_timeout_established / _time_wait, or exempt heavy traffic from tracking (notrack)."])
    }

    static func firewall(_ cause: RecordCause?, _ f: Facts) -> Advice {
        if case .firewall(.conntrackInvalid)? = cause {
            return Advice(fix: "find why conntrack saw the packet as invalid: asymmetric routing (it saw only one direction), "
                            + "a mid-stream pickup refused with net.netfilter.nf_conntrack_tcp_loose=0, a NAT reusing tuples, or TCP "
                            + "window tracking (net.netfilter.nf_conntrack_tcp_be_liberal=1 relaxes it); "
                            + "conntrack -E and the invalid counter of conntrack -S show it live. Do not just delete the rule: "
                            + ruleFix(f),
                          steps: ["A `ct state invalid` rule dropped a handshake packet conntrack had no entry for (evidence ct_state).",
                                  "Usual causes: asymmetric routing (replies take another path, so conntrack saw one direction only); "
                                    + "the connection started before conntrack (nf_conntrack_tcp_loose=0 refuses mid-stream pickup); "
                                    + "a NAT reusing tuples; TCP window tracking (nf_conntrack_tcp_be_liberal=1 relaxes it).",
                                  "Watch it: conntrack -S (invalid counter), conntrack -E, sysctl net.netfilter.nf_conntrack_log_invalid=255 "
                                    + "(logs why each packet is invalid)."])
        }
        if case .firewall(.ipvsNoDestination)? = cause {
            let svc = f.ipvsService ?? "<vip>:<port>"
            return Advice(fix: "give IPVS virtual service \(svc) a real server with weight > 0 (ipvsadm -Ln -t \(svc) lists them; "
                            + "ipvsadm -a -t \(svc) -r <server:port> -m adds one); with kube-proxy in IPVS mode, the Service "
                            + "of this ClusterIP has no ready endpoints: kubectl get svc -A -o wide | grep \(f.address.map { "\($0)" } ?? "<vip>"), then check its "
                            + "selector and its pods' readiness (kubectl get endpointslices)",
                          steps: ["IPVS refuses connections to a virtual service it cannot schedule: no real server, or all at weight 0 "
                                    + "(quiesced by a health checker). No firewall rule is involved: nft and iptables do not list IPVS.",
                                  "ipvsadm -Ln shows the service and its servers; with kube-proxy (IPVS mode) find the Service by its "
                                    + "ClusterIP and why it has no ready endpoints; with keepalived, why its checks fail."])
        }
        if case .firewall(let c)? = cause, c == .networkIsolation || c == .internalNetwork {
            return dockerNetworkAdvice(c, f)
        }
        if case .firewall(.serviceWithoutLocalEndpoints)? = cause {
            let svc = "-n \(f.serviceNamespace ?? "<namespace>") \(f.serviceShortName ?? "<name>")"
            return Advice(fix: "send this traffic only to nodes with a ready endpoint (the load balancer's health check on the Service's "
                            + "healthCheckNodePort does that), run an endpoint on every node that receives it (a DaemonSet, topology "
                            + "spread), or set the policy to Cluster if the client's source address need not be kept "
                            + "(kubectl get svc \(svc) -o jsonpath='{.spec.externalTrafficPolicy} {.spec.internalTrafficPolicy}')",
                          steps: ["With externalTrafficPolicy (or internalTrafficPolicy) Local, kube-proxy drops connections arriving at a "
                                    + "node that has no ready endpoint of the Service: no hop to another node, to keep the client's address.",
                                  "Make the load balancer or the clients use only nodes with endpoints (healthCheckNodePort), place "
                                    + "endpoints on every node that gets traffic, or switch the policy to Cluster."])
        }
        if case .firewall(.networkPolicy)? = cause {
            return networkPolicyAdvice(f)
        }
        if case .firewall(.rateLimited)? = cause {
            return rateLimitAdvice(f)
        }
        if case .firewall(.addressBanned)? = cause {
            return banAdvice(f)
        }
        if case .firewall(.serviceWithoutEndpoints)? = cause {
            return Advice(fix: "check that the Service's selector matches running pods and that they pass their readiness probes "
                            + "(kubectl get endpointslices -n \(f.serviceNamespace ?? "<namespace>"))",
                          steps: ["kube-proxy rejects connections to a Service without ready endpoints (the Service is in the evidence).",
                                  "Check its pods and selector: kubectl get endpointslices -l kubernetes.io/service-name=<name>, "
                                    + "and why the pods are not ready (kubectl describe pod)."])
        }
        return Advice(fix: ruleFix(f), steps: ["A firewall rule blocks this traffic: find it (the rule in the evidence; nft list ruleset / iptables -S).",
                              "Change the rule (or add an accept rule before it) for the intended sources, and persist the change.",
                              "Check every layer: host firewall, container/Kubernetes network policy, cloud security groups."])
    }

    /// rate_limited: the limit works as written; the question is whether
    /// this client should be under it.
    static func rateLimitAdvice(_ f: Facts) -> Advice {
        let port = portText(f)
        let client = f.clientAddress.map { "\($0)" } ?? "<client>"
        let exempt: String
        if let r = f.rule, r.chain == "ufw-user-limit" || r.chain == "ufw6-user-limit" {
            exempt = "ufw insert 1 allow from \(client) to any port \(port) proto tcp; or `ufw allow \(port)/tcp` in place of `ufw limit`"
        } else if let r = f.rule, r.iptables {
            exempt = "\(r.iptablesCommand) -I \(r.chain) -s \(client) -p tcp --dport \(port) -j ACCEPT"
        } else if let r = f.rule {
            let family = f.clientAddress.map { $0.isV4Mapped ? "ip" : "ip6" } ?? "ip"
            exempt = "nft insert rule \(r.table) \(r.chain) \(family) saddr \(client) tcp dport \(port) accept"
        } else {
            exempt = "an accept rule for \(client) ahead of the limiting rule"
        }
        let limit = f.rateLimit.map { " (\($0)\(f.rateLimitPer.map { ", counted per \($0)" } ?? ""))" } ?? ""
        return Advice(fix: "if this client should get through (many users behind one NAT address, a connection pool, a load balancer "
                        + "or health checker, a tool opening sessions in a loop), exempt its address before the limit (\(exempt)) "
                        + "or raise the limit\(limit); if it should not, the limit is doing its job",
                      steps: ["A firewall rule refuses connections past a limit\(limit): the client opened more connections, "
                                + "or new ones faster, than it allows.",
                              "Decide whether the client should be under it: clients behind one NAT address or proxy share one limit; "
                                + "connection pools and health checkers open many at once.",
                              "Exempt the client with an accept rule before the limit, or raise the limit; persist the change."])
    }

    /// address_banned: lift the ban the tool's way, and keep it from coming back.
    static func banAdvice(_ f: Facts) -> Advice {
        let client = f.clientAddress.map { "\($0)" } ?? "<client>"
        let lift: String, keep: String
        switch f.bannedBy {
        case "fail2ban"?:
            lift = "fail2ban-client set \(f.banList ?? "<jail>") unbanip \(client)"
            keep = "add it to ignoreip in /etc/fail2ban/jail.local"
        case "sshguard"?:
            let set = f.banList ?? "attackers"
            lift = set.hasPrefix("sshguard") ? "ipset del \(set) \(client)" : "nft delete element ip sshguard \(set) { \(client) }"
            keep = "list it in sshguard's whitelist (WHITELIST_FILE in sshguard.conf)"
        case "crowdsec"?:
            lift = "cscli decisions delete --ip \(client)"
            keep = "add it to an allowlist (cscli allowlists add, or a whitelist parser)"
        default:
            lift = "remove \(client) from the ban list"
            keep = "allow it in the tool's configuration"
        }
        return Advice(fix: "if the ban is wrong (a shared NAT address, a monitoring or CI host, a user who mistyped a password), "
                        + "lift it (\(lift)) and \(keep); if it is right, the client was failing to log in or attacking: "
                        + "the ban is doing its job",
                      steps: ["An intrusion-prevention tool (\(f.bannedBy ?? "fail2ban, sshguard, CrowdSec")) banned the client's address "
                                + "after failures it counted; its rule refuses every connection from it until the ban expires.",
                              "Check why in the tool's log (fail2ban-client status <jail>; journalctl -u sshguard; cscli decisions list).",
                              "If the ban is wrong, lift it (\(lift)) and \(keep)."])
    }

    /// network_policy: the pod's NetworkPolicies, not the rule, are what to change.
    static func networkPolicyAdvice(_ f: Facts) -> Advice {
        let parts = f.policyPod?.split(separator: "/", maxSplits: 1).map(String.init)
        let ns = parts?.first ?? "<namespace>"
        let pod = parts.flatMap { $0.count == 2 ? $0[1] : nil } ?? "<pod>"
        let port = f.port.map(String.init) ?? "<port>"
        let again = "\(f.policyEnforcer ?? "the policy controller") writes its rules again from the policies"
        let fix = f.policyEgress
            ? "allow the server in an egress rule of a NetworkPolicy that selects pod \(pod) in namespace \(ns) (kubectl get networkpolicy -n \(ns); "
                + "to: the server's pods, namespace or ipBlock, with port \(port)); \(again)"
            : "allow this client in a NetworkPolicy that selects pod \(pod) in namespace \(ns) (kubectl get networkpolicy -n \(ns); "
                + "an ingress rule whose from: matches the client's pods, namespace or ipBlock, with port \(port)), "
                + "or, if the pod is the client, in its egress rules; \(again)"
        return Advice(fix: fix,
                      steps: ["Once any NetworkPolicy selects a pod, only what one of those policies allows reaches it (ingress), "
                                + "or leaves it (egress): \(f.policyEnforcer ?? "the policy controller") stops the rest at the end of the pod's chain.",
                              "See which policies select it: kubectl get networkpolicy -n \(ns) -o wide; kubectl describe networkpolicy -n \(ns)"
                                + (f.policyEnforcer == "Calico" ? "; Calico's own and global ones too: kubectl get networkpolicies.crd.projectcalico.org,"
                                    + "globalnetworkpolicies.crd.projectcalico.org -A (or calicoctl get globalnetworkpolicy)." : "."),
                              "Compare the client's labels, namespace labels and address with their from:/to: and ports: entries; "
                                + "a policy without an ingress section (a default deny) allows nothing."])
    }

    /// network_isolation, internal_network: Docker keeps its networks
    /// apart on purpose; its rule comes back when deleted.
    static func dockerNetworkAdvice(_ c: FirewallCause, _ f: Facts) -> Advice {
        let net = f.dockerNetwork ?? "<network>"
        let client = f.clientContainer ?? "<client container>"
        let inspect = "docker inspect -f '{{json .NetworkSettings.Networks}}' \(client)"
        if c == .internalNetwork {
            return Advice(fix: "network \(net) is internal (docker network create --internal): only its own containers reach each other; "
                            + "if \(client) must reach beyond it, connect it to a network that is not internal as well "
                            + "(docker network connect <network> \(client)), or recreate \(net) without --internal; "
                            + "Docker writes its rule again if it is deleted",
                          steps: ["Docker drops traffic into and out of an internal network: by design, not a fault of the rule.",
                                  "See the network and its containers: docker network inspect \(net); the client's networks: \(inspect).",
                                  "Give the container a second, non-internal network, or drop --internal from the network's definition."])
        }
        return Advice(fix: "Docker isolates its networks from one another: connect \(client) to network \(net) as well "
                        + "(docker network connect \(net) \(client)), or put both services on one shared network "
                        + "(Compose: the same entry under networks:); Docker writes its rule again if it is deleted",
                      steps: ["Docker drops traffic between containers on different networks (DOCKER-ISOLATION-STAGE-2): by design, not a fault of the rule.",
                              "See where each one is: \(inspect); docker network inspect \(net).",
                              "Attach the client to the server's network (docker network connect), or define one network both services join, "
                                + "and reach the server there by its container or service name."])
    }

    /// no_route. `facts.address`: the destination; `facts.family`: its family.
    /// no_route_back: the listener's namespace cannot route the SYN-ACK to
    /// the client. `address` is the client's, `listenerAddress` the SYN's
    /// destination (the SYN-ACK's source).
    static func noRouteBack(_ cause: RecordCause?, _ f: Facts) -> Advice {
        let client = f.address.map { "\($0)" } ?? "<client>"
        let from = f.listenerAddress.map { " from \($0)" } ?? ""
        let get = "ip route get \(client)\(from)\(f.routeGetKeys)"
        if case .noRoute(let c)? = cause, c != .noMatchingRoute, !c.routeType.isEmpty {
            return Advice(fix: "a \(c.routeType) route or rule answers for \(client) in the server's namespace: "
                            + "remove it, or add a more specific route back to the clients' network",
                          steps: ["The SYN arrived and the listener would have answered, but the SYN-ACK's route back is of type \(c.routeType): "
                                    + "the kernel drops the SYN (nstat: TcpExtListenDrops, IpOutNoRoutes) and the client times out.",
                                  "Find it: \(get); ip route show table all type \(c.routeType); ip rule.",
                                  "Routing daemons and VPN clients add such routes: change their configuration, not only the route."])
        }
        return Advice(fix: "add a route back to \(client)'s network in the server's namespace (ip route add <client network> via <gateway>, "
                        + "or a default route), or make the client use a source address this host can reach",
                      steps: ["The SYN arrived (reverse-path filtering off or loose let it in) and the listener would have answered, "
                                + "but no route leads back to \(client): the kernel drops the SYN (nstat: TcpExtListenDrops, IpOutNoRoutes) "
                                + "and the client times out, with no reset and no ICMP error.",
                              "Usual causes: a multi-homed host missing the route of a second network; a client whose source address "
                                + "(a VPN or secondary address) this host does not know; a namespace or container without a default route; "
                                + "policy routing (ip rule) that sends replies to a table without the route — the listener's own "
                                + "mark (SO_MARK), bound device (SO_BINDTODEVICE, a VRF) or owner (ip rule uidrange) choose the table its "
                                + "SYN-ACKs are routed by.",
                              "Check: \(get); ip rule; ip route show table all."])
    }

    static func noRoute(_ cause: RecordCause?, _ f: Facts) -> Advice {
        let dst = f.address.map { "\($0)" } ?? "<destination>"
        let get = "ip route get \(dst)\(f.routeGetKeys)"
        let see = "see which route or rule answers: \(get); ip rule; ip route show table all type "
        let unbind = "or stop binding the client to it (curl --interface, SO_BINDTODEVICE, a bind-interface setting)"
        if case .noRoute(.boundDeviceDown)? = cause {
            let dev = f.boundDevice?.reference ?? "<device>"
            return Advice(fix: "bring \(dev) up (ip link set \(dev) up; for a VPN or tunnel, start it), \(unbind)",
                          steps: ["The socket is bound to \(dev) (SO_BINDTODEVICE), which is down: the kernel refuses any route through it.",
                                  "Bring it up (ip link set \(dev) up), or start what owns it (a VPN client, wg-quick, a tunnel).",
                                  "If the client should not be tied to it, remove its interface binding."])
        }
        if case .noRoute(.linkLocalWithoutScope)? = cause {
            return Advice(fix: "name the interface: connect to \(dst)%<interface> (the address's scope id, as in [\(dst)%eth0]:port; "
                            + "ip -6 neigh show \(dst) says on which link it answers), or bind the socket to that interface (SO_BINDTODEVICE); "
                            + "or use the host's global or ULA address",
                          steps: ["A link-local address (fe80::/10) exists on every link at once: connect() needs to know which one, "
                                    + "from the address's scope id (%eth0) or the socket's bound device, and fails with EINVAL without either.",
                                  "Add the scope id where the address is configured ([fe80::1%eth0]:port), or bind the client to the interface.",
                                  "Or give the server a global or unique-local address and connect to that."])
        }
        if case .noRoute(.loopbackRoute)? = cause {
            return Advice(fix: "route \(dst) through the interface that reaches it (ip -6 route replace <prefix> via <gateway> dev <interface>); "
                            + "a route through lo is a reject route in IPv6 — if it is meant to discard, say so (ip -6 route replace unreachable <prefix>)",
                          steps: ["\(get) answers `unicast \(dst) dev lo`: for an address that is not local the kernel rejects it (ENETUNREACH), "
                                    + "though ip -6 route lists it as an ordinary route.",
                                  "Find it: ip -6 route show table all dev lo (the longest prefix containing \(dst)).",
                                  "Routing daemons (BIRD, FRR) and scripts install such routes for aggregates or anycast: "
                                    + "change their configuration, not only the route."])
        }
        if case .noRoute(.noMatchingRoute)? = cause, let dev = f.boundDevice {
            let name = dev.reference
            let add = dev.isVRF ? "ip route add \(dst) via <gateway> vrf \(name)" : "ip route add \(dst) via <gateway> dev \(name)"
            return Advice(fix: "add a route to \(dst) \(dev.isVRF ? "in VRF \(name)'s table" : "that leaves by \(name)") (\(add)), \(unbind)",
                          steps: ["The socket is bound to \(dev.label) (SO_BINDTODEVICE, or ip vrf exec): only routes through it (its VRF's table) count.",
                                  "See what it has: \(get); ip route show \(dev.isVRF ? "vrf" : "dev") \(name).",
                                  "Add the route there, or bind the client to the interface that reaches \(dst)."])
        }
        if case .noRoute(.noMatchingRoute)? = cause, f.family != .ipv6, let client = f.clientContainer {
            let cli = f.containerRuntime.cli
            return Advice(fix: "container \(client) has no IPv4 route out: its networks have no gateway (an --internal network, "
                            + "--network none); connect it to a network that has one (\(cli) network connect <network> \(client)), "
                            + "or reach \(dst) through a service on its own network",
                          steps: ["connect() found no route in the container's namespace: \(cli) exec \(client) ip route shows no default route.",
                                  "See its networks: \(cli) inspect -f '{{json .NetworkSettings.Networks}}' \(client).",
                                  "Attach it to a network with a gateway, or drop --internal / --network none from its definition."])
        }
        guard case .noRoute(let c)? = cause, c != .noMatchingRoute else {
            let v6 = f.family == .ipv6
            return Advice(fix: v6
                            ? "make the client use IPv4 (or prefer IPv4 for names with both addresses), or add IPv6 routing"
                            : "add a route to \(dst) (usually a default route: ip route add default via <gateway>), or connect to an address this network namespace can reach",
                          steps: ["connect() found no route: \(get) shows the same error.",
                                  "In a container or pod, check its network: attached to a network with a gateway (docker network inspect, the CNI's routes)?",
                                  "After a network change (DHCP lease lost, VPN down, interface down), restore the default route."])
        }
        return Advice(fix: "such a route or rule sends \(dst) nowhere on purpose; "
                        + "remove it if this destination should be reachable (\(see)\(c.routeType))",
                      steps: ["connect() was refused by the routing table, not by the peer or a firewall rule.",
                              "Find it: ip route show table all type \(c.routeType); ip rule (a rule can be of type \(c.routeType) too).",
                              "Routing daemons and VPN clients add such routes (kill switches, bogon filters): change their configuration, not only the route."])
    }

    /// family_mismatch. A wildcard IPv6 listener with IPV6_V6ONLY can take
    /// IPv4 too; a specific IPv6 address (::1) never can: the IPv4 address
    /// needs a socket of its own. Loopback on one side and the other is
    /// "localhost" resolved differently by the service and the client.
    static func familyMismatchFix(_ f: Facts, _ port: String) -> String {
        let addr = f.listenerAddress
        let loopback = addr?.isLoopback == true
        let localhost = loopback ? "; \"localhost\" resolving to ::1 for one side and 127.0.0.1 for the other is the usual cause" : ""
        guard f.listenerFamily == .ipv6 else {
            let v6 = loopback ? "[::1]" : "[::]"
            return "also listen on \(v6):\(port), or connect over IPv4\(loopback ? " (127.0.0.1:\(port))" : "")\(localhost)"
        }
        if let addr, !addr.isUnspecified {
            let v4 = loopback ? "127.0.0.1:\(port)" : "the IPv4 address clients use"
            return "also listen on \(v4) (an IPv6 address other than [::] never takes IPv4 connections, IPV6_V6ONLY or not; "
                + "or listen on [::]:\(port) with IPV6_V6ONLY off for both families), or connect to "
                + "\(Endpoint(addr: addr, port: f.port ?? 0))\(localhost)"
        }
        return "also listen on 0.0.0.0:\(port), clear IPV6_V6ONLY (setsockopt IPV6_V6ONLY 0; net.ipv6.bindv6only=0 for the default), "
            + "or connect over IPv6"
    }

    /// Delete the rule, or add the accept rule a policy drop lacks; without a
    /// rule, how to find it.
    static func ruleFix(_ f: Facts) -> String {
        let port = portText(f)
        guard let r = f.rule else {
            return "find it with `nft -a list ruleset` (or `iptables -L -v -n`) and delete it or add an accept rule before it"
        }
        if r.policyDrop {
            let add = r.iptables
                ? "\(r.iptablesCommand) -I \(r.chain) -p tcp --\(r.portMatch) \(port) -j ACCEPT"
                : "nft insert rule \(r.table) \(r.chain) tcp \(r.portMatch) \(port) accept"
            return "add an accept rule for port \(port) (\(add))"
        }
        let delete: String
        if r.legacy, let position = r.handle {
            delete = "\(r.iptablesCommand) -D \(r.chain) \(position), after checking with `\(r.iptablesCommand) -L \(r.chain) -n --line-numbers`"
        } else if r.iptables, let saved = r.saved, saved.count > 2, saved[0] == "-A" {
            delete = "\(r.iptablesCommand) -D \(saved.dropFirst().map(ShellWord.quoted).joined(separator: " "))"
        } else if r.iptables {
            delete = "\(r.iptablesCommand) -D \(r.chain) ... (see `\(r.iptablesCommand) -L \(r.chain) --line-numbers`)"
        } else {
            delete = "nft delete rule \(r.table) \(r.chain)" + (r.handle.map { " handle \($0)" } ?? "")
        }
        return "delete it (\(delete)) or add an accept rule before it"
    }

    static func lsmSteps(_ port: String) -> [String] {
        ["An LSM (SELinux/AppArmor/Landlock) denied it: read the denial in the evidence (ausearch -m avc).",
         "For SELinux add the port label: semanage port -a -t <type>_port_t -p tcp \(port).",
         "Or fix the policy or profile; do not switch enforcement off."]
    }

    static func selinuxFix(_ f: Facts) -> String {
        let domain = f.selinuxDomain ?? "the domain"
        if f.deniedPermissions.contains("name_bind") || f.deniedPermissions.contains("name_connect") {
            return "label the port with a type \(domain) may use, e.g. `semanage port -a -t <port_type> -p \(f.socketProtocol ?? "tcp") \(portText(f))`, "
                + "or add a policy module (audit2allow)"
        }
        if f.deniedPermissions.contains("node_bind") {
            return "bind another address, or label the node (`semanage node`) / extend the policy (audit2allow)"
        }
        return "extend the policy for this access (audit2allow -a shows the rule) or run the service in a domain that has it"
    }

    /// By what holds the port: a second listener, a listener, a TIME_WAIT
    /// connection, another socket, or nothing found.
    static func addressInUseFix(_ f: Facts) -> String {
        if f.call == .listen { return "stop the other listener, or set SO_REUSEPORT on both sockets to share the port" }
        switch f.holderState {
        case "LISTEN"?: return "stop it or change one of the two ports (an old instance still running, or a second copy of the service?)"
        case "TIME_WAIT"?: return "set SO_REUSEADDR on the socket before bind() (servers should always), or wait for it to expire"
        case .some: return "stop that user or bind another port; set SO_REUSEADDR before bind() if it is a leftover connection"
        case nil: return "find it with `ss -tanp 'sport = :\(portText(f))'` and stop it, or bind another port"
        }
    }

    /// A cgroup BPF program refused bind() or connect(): where its policy lives.
    static func cgroupBPFFix(_ f: Facts) -> String {
        let port = portText(f)
        switch f.bpfOwner {
        case .systemd?:
            let unit = f.unit ?? "<unit>"
            return f.call == .connect
                ? "allow the destination in IPAddressAllow=/IPAddressDeny= of \(unit) (systemctl cat \(unit); its slice's too)"
                : "allow the port in SocketBindAllow= of \(unit) (tcp:\(port)) or drop it from its SocketBindDeny= "
                    + "(systemctl cat \(unit); its slice's too), then restart it"
        case let owner?:
            return "allow port \(port) in \(owner.rawValue)'s policy for this workload"
        case nil:
            return "allow port \(port) in the policy of whoever attached the program (bpftool cgroup tree), or detach it"
        }
    }

    static func calls(_ reason: Reason?, _ cause: RecordCause?, _ f: Facts) -> Advice {
        let port = portText(f)
        switch (reason, cause) {
        case (.lsmDenied?, .lsmDenied(.landlock)?):
            return Advice(fix: "add a LANDLOCK_RULE_NET_PORT rule for port \(port) to its sandbox policy, or use a port the policy allows",
                          steps: ["Landlock sandboxes the process without a rule for this port: add a LANDLOCK_RULE_NET_PORT rule for it to the sandbox policy.",
                                  "Or use a port the policy allows."])
        case (.lsmDenied?, .lsmDenied(.selinux)?):
            return Advice(fix: selinuxFix(f), steps: lsmSteps(port))
        case (.lsmDenied?, .lsmDenied(.otherLSM)?):
            return Advice(fix: "check \(f.lsmsToCheck ?? "the active LSMs") (AppArmor: `aa-status` and apparmor=\"DENIED\" in the audit log)",
                          steps: lsmSteps(port))
        case (.lsmDenied?, .lsmDenied(.cgroupBPF)?):
            return Advice(fix: cgroupBPFFix(f),
                          steps: ["A cgroup BPF program on the process's cgroup (or an ancestor) refused the call: the evidence names it "
                                    + "and where it is attached (bpftool cgroup tree lists them all).",
                                  "systemd: SocketBindAllow=/SocketBindDeny= (bind) or IPAddressDeny= of the unit or its slice; "
                                    + "otherwise the policy agent that attached it (Cilium, Calico, a security tool): allow the port there, "
                                    + "or detach the program (bpftool cgroup detach <dir> <type> id <id>)."])
        case (.lsmDenied?, _):
            return Advice(fix: "read the denial in the audit log and fix the policy or the port's label",
                          steps: lsmSteps(port))
        case (.addressInUse?, _):
            return Advice(fix: addressInUseFix(f),
                          steps: ["Another process holds the port (see the holder in the evidence; ss -ltnp 'sport = :\(port)').",
                                  "Stop the old instance or move one service to another port; use SO_REUSEADDR for restarts over TIME_WAIT."])
        case (.privilegedPort?, _) where f.otherUserNamespace:
            let start = f.unprivilegedPortStart.map(String.init) ?? "1024"
            return Advice(fix: "run it in a network namespace created inside its user namespace (a rootless container's own network, not the host's), "
                            + "use a port >= \(start), or lower net.ipv4.ip_unprivileged_port_start in that network namespace",
                          steps: ["The process is root only in its own user namespace (rootless container, unshare -U); the network namespace belongs to another, where it has no capabilities.",
                                  "Give it a network namespace of its own (created inside its user namespace), publish the port through the runtime, or use a port >= \(start)."])
        case (.privilegedPort?, _):
            let start = f.unprivilegedPortStart.map(String.init) ?? "1024"
            return Advice(fix: "grant it (AmbientCapabilities=CAP_NET_BIND_SERVICE in the systemd unit, or setcap cap_net_bind_service=+ep on the binary), "
                            + "use a port >= \(start), or lower the sysctl",
                          steps: ["Ports below net.ipv4.ip_unprivileged_port_start need privilege: grant CAP_NET_BIND_SERVICE (systemd AmbientCapabilities).",
                                  "Or use a port above 1024 behind a redirect, or lower net.ipv4.ip_unprivileged_port_start."])
        case (.addressNotAvailable?, .addressNotAvailable(.fourTupleInUse)?):
            return Advice(fix: "do not bind() client sockets to a fixed port (or use IP_BIND_ADDRESS_NO_PORT)",
                          steps: ["The client binds its socket to a fixed local port that already has a connection to this destination.",
                                  "Do not bind() client sockets to a fixed port; let the kernel choose (or use IP_BIND_ADDRESS_NO_PORT)."])
        case (.addressNotAvailable?, .addressNotAvailable(.tentative)?):
            let dev = f.device ?? "<interface>"
            return Advice(fix: "start the service once the address is usable (after network-online.target, "
                            + "with systemd-networkd-wait-online or NetworkManager-wait-online), or let it bind early: "
                            + "IPV6_FREEBIND (IP_FREEBIND) or net.ipv6.ip_nonlocal_bind=1; if \(dev) has no carrier, bring its link up",
                          steps: ["The IPv6 address is tentative: duplicate address detection (about a second after the address "
                                    + "or its link comes up) has not finished, or cannot start because the link has no carrier.",
                                  "Order the service after network-online.target (and make that target wait for addresses), or bind "
                                    + "with IPV6_FREEBIND / net.ipv6.ip_nonlocal_bind=1; on links where DAD is not wanted, "
                                    + "net.ipv6.conf.\(dev).accept_dad=0 or optimistic_dad=1."])
        case (.addressNotAvailable?, .addressNotAvailable(.duplicateAddress)?):
            let dev = f.device ?? "<interface>"
            return Advice(fix: "find the other host that has \(f.address.map { "\($0)" } ?? "the address") on the link of \(dev) "
                            + "(ip -6 neigh, the switch's tables) and give one of them another address; then remove and re-add it here",
                          steps: ["IPv6 duplicate address detection failed: another host on the link answered for the address, so the kernel "
                                    + "keeps it unusable (dadfailed in ip -6 addr).",
                                  "Give one of the hosts another address (static configuration copied between hosts, a cloned VM's "
                                    + "stable address), then remove and re-add it (ip -6 addr del / add) to run DAD again."])
        case (.addressNotAvailable?, .addressNotAvailable(.configuredSince)?):
            return Advice(fix: "start the service after its address is configured (After=network-online.target and a wait-online service), "
                            + "or let it bind before: IP_FREEBIND / net.\(f.family == .ipv6 ? "ipv6" : "ipv4").ip_nonlocal_bind=1",
                          steps: ["The address exists now but did not when the service bound it: the service started before the network "
                                    + "(or a floating address moved here later).",
                                  "Order the unit after network-online.target with a wait-online service, retry the bind, "
                                    + "or set IP_FREEBIND / ip_nonlocal_bind for addresses that come and go."])
        case (.addressNotAvailable?, .addressNotAvailable(.notConfigured)?) where f.hostHasAddress:
            return Advice(fix: "bind to 0.0.0.0 (or [::]) or to the namespace's own address inside the container or pod, "
                            + "and reach it through a published port or a Service: a namespace has only its own addresses",
                          steps: ["The service runs in a container or pod (its own network namespace) but was configured with "
                                    + "the host's address, which exists only in the host's namespace.",
                                  "Listen on 0.0.0.0/:: inside the container and publish the port (docker run -p HOSTADDR:PORT:PORT), "
                                    + "or run it on the host's network (--network host, hostNetwork: true) if it must own that address."])
        case (.addressNotAvailable?, _):
            let v = f.family == .ipv6 ? "ipv6" : "ipv4"
            return Advice(fix: "bind to the right (or wildcard) address, add the address first, "
                            + "or set net.\(v).ip_nonlocal_bind=1 / IP_FREEBIND to bind before it exists",
                          steps: ["The bind address is not on this host (yet): fix the configured address, or bind after the network is up.",
                                  "For a floating/virtual IP set net.ipv4.ip_nonlocal_bind=1; order the unit after network-online.target."])
        default:
            return Advice(fix: f.outgoing
                            ? "widen the range, reuse connections (keep-alive, pooling), or enable net.ipv4.tcp_tw_reuse"
                            : "widen the range, or release idle sockets",
                          steps: ["The client ran out of local ports: reuse connections (keep-alive, pooling).",
                                  "Widen net.ipv4.ip_local_port_range; enable net.ipv4.tcp_tw_reuse for outgoing connections."])
        }
    }
}
