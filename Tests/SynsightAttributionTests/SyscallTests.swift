import CSynsightABI
@testable import SynsightBase
@testable import SynsightModel
@testable import SynsightNftables
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

// bind/listen/connect failures: decoding of `struct syn_ev_sockcall` from raw
// bytes, attribution of each reason from synthetic events, SELinux
// permission decoding. SELinux is not active on the CI machine: the AVC
// records here are what selinux_audited delivers on an enforcing host
// (docs/kernel-notes.md §6).

func sockcallRecord(op: syn_sockcall_op = SYN_CALL_BIND, ret: Int32 = -98,
                    local: [UInt8] = mapped(127, 0, 0, 1), lport: UInt16 = 8080,
                    remote: [UInt8] = mapped(0, 0, 0, 0), rport: UInt16 = 0, family: UInt16 = 2,
                    cap: syn_cap_state = SYN_CAP_NOT_CHECKED, landlocked: UInt8 = 0,
                    unprivStart: Int32 = 1024, range: (UInt16, UInt16) = (32768, 60999),
                    avc: (requested: UInt32, denied: UInt32, result: Int32, tclass: String, s: String, t: String)? = nil,
                    comm: String = "nginx", pid: UInt32 = 4242, uid: UInt32 = 33,
                    routing: (ifindex: UInt32, mark: UInt32, uid: UInt32) = (0, 0, SYN_UID_UNKNOWN)) -> [UInt8] {
    var e = syn_ev_sockcall()
    e.hdr = header(SYN_EV_SOCKCALL, size: MemoryLayout<syn_ev_sockcall>.size, ts: 9_000_000)
    e.t = tuple(local: local, lport: lport, remote: remote, rport: rport, family: family)
    e.task = task(pid: pid, tid: pid + 1, uid: uid, cgroup: 77, comm: Array(comm.utf8))
    e.start_ns = 8_999_000
    e.netns = hostNS
    e.ret = ret
    e.fd = 5
    e.unpriv_port_start = unprivStart
    e.port_range_lo = range.0
    e.port_range_hi = range.1
    e.op = UInt8(op.rawValue)
    e.sock_type = 1
    e.cap_state = UInt8(cap.rawValue)
    e.landlocked = landlocked
    e.bound_ifindex = routing.ifindex
    e.mark = routing.mark
    e.sk_uid = routing.uid
    if let avc {
        e.avc_count = 1
        e.avc.requested = avc.requested
        e.avc.denied = avc.denied
        e.avc.audited = avc.denied
        e.avc.result = avc.result
        fill(&e.avc.tclass, with: Array(avc.tclass.utf8))
        fill(&e.avc.scontext, with: Array(avc.s.utf8))
        fill(&e.avc.tcontext, with: Array(avc.t.utf8.prefix(128))) // as bpf_probe_read_kernel_str bounds it
    }
    return rawBytes(of: e)
}

func decodedCall(_ bytes: [UInt8]) throws -> SocketCallFailure {
    guard case .socketCall(let s) = try EventDecoder.decode(bytes) else {
        Issue.record("not a socket call")
        throw DecodeError.empty
    }
    return s
}

/// A fake of the live lookups (/proc, /sys).
final class FakeHolders: PortHolderLookup {
    var result: [PortHolder] = []
    var lsms: [String]? = ["lockdown", "capability", "landlock", "bpf"]
    var perms: [String: [String: UInt32]] = [:]
    var calls = 0

    func holders(netns: UInt32, port: UInt16, proto: String, near pid: UInt32) -> [PortHolder] {
        calls += 1
        return result.filter { $0.local.port == port }
    }
    func activeLSMs() -> [String]? { lsms }
    func selinuxPermissions(tclass: String) -> [String: UInt32]? { perms[tclass] }
}

func sysEngine(_ fake: FakeHolders = FakeHolders()) -> AttributionEngine {
    var e = engine()
    e.syscalls = SyscallState(holders: fake)
    return e
}

/// Route lookups as the kernel answers them for 203.0.113.x (x: 1 no route,
/// 2 unreachable, 3 prohibit, 4 blackhole, 5 a unicast route now), and a
/// unicast route for everything else.
struct FakeRoutes: DropRouteSource {
    func pin(_ drop: PacketDrop) {}
    func lookup(_ q: DropRouteQuery) -> DropRouteFindings {
        let failures: [UInt64: Int32] = [1: 101, 2: 113, 3: 13, 4: 22]
        let last = q.lookup.dst.low & 0xFF
        let answer: RouteGet.Answer = q.lookup.dst.low >> 8 & 0xFF_FFFF == 0xCB_0071 && failures[last] != nil
            ? .failed(failures[last]!) : .route(RouteGet.Route(type: 1, table: 254, oif: 2, gateway: v4(10, 0, 0, 1)))
        // A socket bound to ifindex 7 ("wg0", down) or 8 (VRF "blue", up).
        let device = q.lookup.oif.map { NetDevice(ifindex: $0, name: $0 == 8 ? "blue" : "wg0", isVRF: $0 == 8, up: $0 != 7) }
        return DropRouteFindings(route: RouteLookupResult(request: q.lookup, answer: answer, oifName: "eth0"), boundDevice: device)
    }
}

func call(_ c: SocketCall = .bind, errno: Int32, local: Endpoint = Endpoint(addr: v4(127, 0, 0, 1), port: 8080),
          remote: Endpoint? = nil, pid: UInt32 = 500, uid: UInt32 = 1000, cap: CapabilityCheck = .notChecked,
          landlocked: Bool = false, avc: AVCDenial? = nil, ts: UInt64 = 10_000, routing: SocketRouting? = nil) -> KernelEvent {
    .socketCall(SocketCallFailure(ts: ts, call: c, family: .ipv4, local: local, remote: remote,
                                  task: TaskInfo(pid: pid, uid: uid, comm: "svc"), netns: hostNS, errno: errno,
                                  capability: cap, landlocked: landlocked, avcCount: avc == nil ? 0 : 1, avc: avc,
                                  routing: routing))
}

@Suite("Syscall records: decoding")
struct SyscallDecodeTests {
    @Test("bind EADDRINUSE decodes with the requested address, errno and netns sysctls")
    func bindRecord() throws {
        let s = try decodedCall(sockcallRecord())
        #expect(s.call == .bind)
        #expect(s.errno == 98)
        #expect(s.family == .ipv4)
        #expect(s.local == Endpoint(addr: v4(127, 0, 0, 1), port: 8080))
        #expect(s.port == 8080)
        #expect(s.task.pid == 4242 && s.task.tid == 4243 && s.task.uid == 33 && s.task.comm == "nginx")
        #expect(s.netns == hostNS)
        #expect(s.unprivilegedPortStart == 1024)
        #expect(s.localPortRange == 32768...60999)
        #expect(s.capability == .notChecked)
        #expect(!s.landlocked)
        #expect(s.avc == nil)
        #expect(s.fd == 5 && s.startTs == 8_999_000)
    }

    @Test("connect record: the destination is the port; unknown sysctls are nil")
    func connectRecord() throws {
        let s = try decodedCall(sockcallRecord(op: SYN_CALL_CONNECT, ret: -99, local: mapped(0, 0, 0, 0), lport: 0,
                                               remote: mapped(10, 1, 2, 3), rport: 443, unprivStart: -1, range: (0, 0)))
        #expect(s.call == .connect)
        #expect(s.port == 443)
        #expect(s.remote == Endpoint(addr: v4(10, 1, 2, 3), port: 443))
        #expect(s.unprivilegedPortStart == nil)
        #expect(s.localPortRange == nil)
    }

    @Test("AVC section: bounded strings, bits and permissive result")
    func avcRecord() throws {
        let long = String(repeating: "x", count: 200)
        let s = try decodedCall(sockcallRecord(ret: 0, avc: (0x100000, 0x100000, 0, "tcp_socket",
                                                             "system_u:system_r:httpd_t:s0", long)))
        let avc = try #require(s.avc)
        #expect(s.errno == 0)
        #expect(avc.tclass == "tcp_socket")
        #expect(avc.scontext == "system_u:system_r:httpd_t:s0")
        #expect(avc.tcontext.count == 128) // filled the field: cut, not overrun
        #expect(avc.permissive)
    }

    @Test("capability and landlock flags")
    func flags() throws {
        let s = try decodedCall(sockcallRecord(ret: -13, cap: SYN_CAP_DENIED, landlocked: 1))
        #expect(s.capability == .denied)
        #expect(s.landlocked)
    }

    @Test("truncated, empty-ish and bad op records are errors, not crashes")
    func malformed() throws {
        let full = sockcallRecord()
        #expect(throws: DecodeError.truncated(kind: 6, got: 100, need: MemoryLayout<syn_ev_sockcall>.size)) {
            try EventDecoder.decode(Array(full.prefix(100)))
        }
        #expect(throws: DecodeError.truncated(kind: 6, got: 1, need: MemoryLayout<syn_ev_sockcall>.size)) {
            try EventDecoder.decode([6])
        }
        var bad = full
        bad[MemoryLayout<syn_ev_sockcall>.offset(of: \syn_ev_sockcall.op)!] = 9
        #expect(throws: DecodeError.unknownCall(9)) { try EventDecoder.decode(bad) }
        // A longer record (a later ABI revision) still decodes.
        #expect(throws: Never.self) { try EventDecoder.decode(full + [0, 0, 0, 0, 0, 0, 0, 0]) }
    }

    @Test("a connect()'s socket keys decode (device, mark, owner); a socket the kernel side could not read has none")
    func routingKeys() throws {
        let keyed = try decodedCall(sockcallRecord(op: SYN_CALL_CONNECT, ret: -101, routing: (7, 0x20, 1000)))
        #expect(keyed.routing == SocketRouting(boundIfindex: 7, mark: 0x20, uid: 1000))
        #expect(try decodedCall(sockcallRecord(op: SYN_CALL_CONNECT, ret: -101)).routing == nil)
    }

    @Test("ABI layout is pinned")
    func layout() {
        #expect(MemoryLayout<syn_ev_sockcall>.size == 448)
        #expect(MemoryLayout<syn_ev_sockcall>.offset(of: \syn_ev_sockcall.bound_ifindex) == 132)
        #expect(MemoryLayout<syn_ev_sockcall>.offset(of: \syn_ev_sockcall.mark) == 440)
        #expect(MemoryLayout<syn_ev_sockcall>.offset(of: \syn_ev_sockcall.sk_uid) == 444)
        #expect(MemoryLayout<syn_avc>.size == 304)
        #expect(SYN_EV_SOCKCALL.rawValue == 6)
    }
}

@Suite("Syscall records: attribution")
struct SyscallAttributionTests {
    @Test("address_in_use: process = the listener from the registry, client = the failing process")
    func inUseRegistry() throws {
        var e = sysEngine()
        _ = e.ingest(.listen(listenerChange(at: 1, on: Endpoint(addr: .any4, port: 8080), pid: 100, comm: "old", inode: 9)))
        let r = try single(run(&e, [call(errno: 98, pid: 200)]))
        #expect(r.kind == .bindFailure)
        #expect(r.reason == .addressInUse)
        #expect(r.port == 8080)
        #expect(r.process?.pid == 100)
        #expect(r.client?.pid == 200)
        #expect(r.evidence("holder")?["state"]?.stringValue == "LISTEN")
        #expect(r.evidence("holder")?["pid"]?.intValue == 100)
        #expect(r.evidence("failed_in")?.stringValue == "bind")
        #expect(r.hint?.contains("old (pid 100)") == true)
    }

    @Test("address_in_use: a TIME_WAIT holder from /proc; a conflicting address ranks first")
    func inUseTimeWait() throws {
        let fake = FakeHolders()
        fake.result = [
            PortHolder(pid: 7, comm: "other", state: "ESTABLISHED", family: .ipv4,
                       local: Endpoint(addr: v4(10, 0, 0, 9), port: 8080), inode: 5),
            PortHolder(pid: nil, comm: nil, state: "TIME_WAIT", family: .ipv4,
                       local: Endpoint(addr: v4(127, 0, 0, 1), port: 8080),
                       remote: Endpoint(addr: v4(127, 0, 0, 1), port: 50000)),
        ]
        var e = sysEngine(fake)
        let r = try single(run(&e, [call(errno: 98, pid: 200)]))
        #expect(r.process == nil)
        #expect(r.client?.pid == 200)
        #expect(r.evidence("holder")?["state"]?.stringValue == "TIME_WAIT")
        #expect(r.evidence("holders")?.intValue == 2)
        #expect(r.hint?.contains("SO_REUSEADDR") == true)
        // A retry within a second does not scan /proc again.
        _ = e.ingest(call(errno: 98, pid: 201, ts: 20_000))
        #expect(fake.calls == 1)
    }

    @Test("address_in_use from listen(): says so; no holder found still gives a hint")
    func inUseListen() throws {
        var e = sysEngine()
        let r = try single(run(&e, [call(.listen, errno: 98, pid: 300)]))
        #expect(r.reason == .addressInUse)
        #expect(r.evidence("failed_in")?.stringValue == "listen")
        #expect(r.client?.pid == 300)
        #expect(r.process == nil)
        #expect(r.hint?.contains("SO_REUSEPORT") == true)
    }

    @Test("bind(port 0) EADDRINUSE: no free ephemeral port")
    func bindPortZero() throws {
        var e = sysEngine()
        let r = try single(run(&e, [call(errno: 98, local: Endpoint(addr: .any4, port: 0))]))
        #expect(r.reason == .ephemeralPortsExhausted)
        #expect(r.kind == .bindFailure)
        #expect(r.process?.pid == 500)
    }

    @Test("privileged_port from the kernel's capability verdict: not effective, or held in another user namespace")
    func privileged() throws {
        var e = sysEngine()
        let r = try single(run(&e, [call(errno: 13, local: Endpoint(addr: .any4, port: 80), cap: .denied)]))
        #expect(r.kind == .bindFailure && r.reason == .privilegedPort)
        #expect(r.process?.pid == 500)
        #expect(r.port == 80)
        #expect(r.evidence("capability")?.stringValue == "CAP_NET_BIND_SERVICE")
        #expect(r.evidence("ip_unprivileged_port_start")?.intValue == 1024)
        #expect(r.evidence("uid")?.intValue == 1000)
        #expect(r.evidence("check")?.stringValue == PrivilegedPortEvidence.credentialsCheck)
        #expect(r.evidence("capability_check")?.stringValue == CapabilityCheck.denied.text)
        #expect(r.hint?.contains("lacks CAP_NET_BIND_SERVICE") == true)

        let u = try single(run(&e, [call(errno: 13, local: Endpoint(addr: .any4, port: 443), uid: 0, cap: .otherUserNamespace)]))
        #expect(u.reason == .privilegedPort)
        #expect(u.evidence("capability_check")?.stringValue == CapabilityCheck.otherUserNamespace.text)
        #expect(u.hint?.contains("only in its own user namespace") == true)
        #expect(u.hint?.contains("network namespace created inside its user namespace") == true)

        // Granted, or not checked: something else refused the call.
        for cap in [CapabilityCheck.granted, .notChecked] {
            let o = try single(run(&e, [call(errno: 13, local: Endpoint(addr: .any4, port: 443), cap: cap)]))
            #expect(o.reason == .lsmDenied && o.cause?.rawValue == "other_lsm")
            #expect(o.evidence("capability_check")?.stringValue == cap.text)
        }
        // EPERM is not the capability check's (a cgroup bind program's, say).
        let p = try single(run(&e, [call(errno: 1, local: Endpoint(addr: .any4, port: 80), cap: .denied)]))
        #expect(p.reason == .lsmDenied)
    }

    @Test("address_not_available on bind; ephemeral exhaustion and 4-tuple reuse on connect")
    func notAvailable() throws {
        var e = sysEngine()
        let b = try single(run(&e, [call(errno: 99, local: Endpoint(addr: v4(192, 0, 2, 1), port: 9000))]))
        #expect(b.kind == .bindFailure && b.reason == .addressNotAvailable)
        #expect(b.evidence("addr")?.stringValue == "192.0.2.1")
        #expect(b.process?.pid == 500)

        let dst = Endpoint(addr: v4(10, 0, 0, 5), port: 5432)
        let c = try single(run(&e, [call(.connect, errno: 99, local: Endpoint(addr: .any4, port: 0), remote: dst, pid: 600)]))
        #expect(c.kind == .connectFailure && c.reason == .ephemeralPortsExhausted)
        #expect(c.port == 5432)
        #expect(c.client?.pid == 600 && c.process?.pid == 600)
        #expect(c.remote == dst)
        #expect(c.evidence("ip_local_port_range")?.stringValue == "32768 60999")
        #expect(c.hint?.contains("tcp_tw_reuse") == true)

        let t = try single(run(&e, [call(.connect, errno: 99, local: Endpoint(addr: .any4, port: 7000), remote: dst)]))
        #expect(t.reason == .addressNotAvailable && t.cause?.rawValue == "four_tuple_in_use")
    }

    @Test("landlock denial on bind and connect; other_lsm lists the active LSMs")
    func lsm() throws {
        var e = sysEngine()
        let b = try single(run(&e, [call(errno: 13, local: Endpoint(addr: v4(127, 0, 0, 1), port: 8090), landlocked: true)]))
        #expect(b.kind == .denial && b.reason == .lsmDenied && b.cause?.rawValue == "landlock")
        #expect(b.process?.pid == 500)
        #expect(b.evidence("operation")?.stringValue == "bind")
        #expect(b.evidence("sandboxed_pid")?.intValue == 500)
        let dst = Endpoint(addr: v4(127, 0, 0, 1), port: 8091)
        let c = try single(run(&e, [call(.connect, errno: 13, remote: dst, landlocked: true)]))
        #expect(c.cause?.rawValue == "landlock" && c.port == 8091 && c.client?.pid == 500)

        let o = try single(run(&e, [call(.connect, errno: 1, remote: dst)]))
        #expect(o.cause?.rawValue == "other_lsm")
        #expect(o.evidence("active_lsms") == .array([.string("lockdown"), .string("capability"), .string("landlock"), .string("bpf")]))
        #expect(o.hint?.contains("cgroup") == true)
    }

    @Test("SELinux name_bind denial, enforcing: decoded permission, contexts, semanage hint")
    func selinuxEnforcing() throws {
        var e = sysEngine()
        let avc = AVCDenial(requested: 0x100000, denied: 0x100000, audited: 0x100000, result: -13, tclass: "tcp_socket",
                            scontext: "system_u:system_r:httpd_t:s0", tcontext: "system_u:object_r:unreserved_port_t:s0")
        let r = try single(run(&e, [call(errno: 13, local: Endpoint(addr: .any4, port: 8081), avc: avc)]))
        #expect(r.kind == .denial && r.reason == .lsmDenied && r.cause?.rawValue == "selinux")
        #expect(r.evidence("permissions") == .array([.string("name_bind")]))
        #expect(r.evidence("mode")?.stringValue == "enforcing")
        #expect(r.evidence("scontext")?.stringValue == "system_u:system_r:httpd_t:s0")
        #expect(r.evidence("tclass")?.stringValue == "tcp_socket")
        #expect(r.hint?.contains("semanage port -a -t") == true)
        #expect(r.hint?.contains("-p tcp 8081") == true)
        #expect(r.process?.pid == 500)
    }

    @Test("SELinux permissive: the call succeeded, still reported; name_connect; sysfs numbering wins")
    func selinuxPermissive() throws {
        let fake = FakeHolders()
        // A policy numbering that differs from the built-in table.
        fake.perms["tcp_socket"] = ["name_connect": 1 << 5]
        var e = sysEngine(fake)
        let avc = AVCDenial(requested: 1 << 5, denied: 1 << 5, audited: 1 << 5, result: 0, tclass: "tcp_socket",
                            scontext: "u:r:app_t:s0", tcontext: "u:object_r:http_port_t:s0")
        let dst = Endpoint(addr: v4(10, 0, 0, 1), port: 80)
        let r = try single(run(&e, [call(.connect, errno: 0, remote: dst, avc: avc)]))
        #expect(r.cause?.rawValue == "selinux")
        #expect(r.evidence("mode")?.stringValue == "permissive")
        #expect(r.evidence("permissions") == .array([.string("name_connect")]))
        #expect(r.port == 80)
        #expect(r.hint?.contains("permissive") == true)
    }

    @Test("a failure that is none of ours (EINVAL) gives no record")
    func ignored() {
        var e = sysEngine()
        #expect(run(&e, [call(errno: 22)]).isEmpty)
    }

    @Test("every reason has a non-empty one-line hint")
    func hints() {
        var e = sysEngine()
        let dst = Endpoint(addr: v4(10, 0, 0, 5), port: 5432)
        let avc = AVCDenial(requested: 0x200000, denied: 0x200000, audited: 0x200000, result: -13, tclass: "tcp_socket",
                            scontext: "a:b:c_t:s0", tcontext: "a:b:node_t:s0")
        let events = [call(errno: 98), call(.listen, errno: 98), call(errno: 99), call(errno: 13, cap: .denied),
                      call(errno: 13, landlocked: true), call(errno: 13), call(.connect, errno: 99, remote: dst),
                      call(errno: 13, avc: avc)]
        let records = run(&e, events)
        #expect(records.count == events.count)
        for r in records {
            #expect(!(r.hint ?? "").isEmpty, "\(r.json)")
            #expect(r.hint?.contains("\n") == false)
        }
        #expect(records.last?.hint?.contains("node_bind") == true)
    }
}

@Suite("SELinux permission decoding")
struct SyscallSELinuxTests {
    @Test("kernel classmap fallback for tcp_socket and udp_socket")
    func fallback() {
        let tcp = [("bind", 0x800), ("connect", 0x1000), ("listen", 0x2000), ("accept", 0x4000),
                   ("name_bind", 0x100000), ("node_bind", 0x200000), ("name_connect", 0x400000)]
        for (name, bit) in tcp {
            #expect(SELinuxPermissions.names(bits: UInt32(bit), tclass: "tcp_socket", table: nil) == [name])
        }
        #expect(SELinuxPermissions.names(bits: 0x100000, tclass: "udp_socket", table: nil) == ["name_bind"])
        #expect(SELinuxPermissions.names(bits: 0x200000, tclass: "udp_socket", table: nil) == ["node_bind"])
        #expect(SELinuxPermissions.names(bits: 0x300000, tclass: "tcp_socket", table: nil) == ["name_bind", "node_bind"])
        #expect(SELinuxPermissions.names(bits: 0x400, tclass: "capability", table: nil) == ["net_bind_service"])
    }

    @Test("sysfs values N mean bit 1 << (N-1); unknown bits print as hex")
    func sysfs() {
        #expect(SELinuxPermissions.bit(fromSysfsValue: 21) == 0x100000)
        #expect(SELinuxPermissions.bit(fromSysfsValue: 0) == nil)
        #expect(SELinuxPermissions.bit(fromSysfsValue: 33) == nil)
        #expect(SELinuxPermissions.names(bits: 0x80000000, tclass: "weird_class", table: nil) == ["0x80000000"])
        #expect(SELinuxPermissions.type(of: "system_u:object_r:http_port_t:s0") == "http_port_t")
        #expect(SELinuxPermissions.type(of: "garbage") == nil)
    }

    @Test("enforcing vs permissive")
    func mode() {
        let a = AVCDenial(requested: 1, denied: 1, audited: 1, result: -13, tclass: "tcp_socket", scontext: "", tcontext: "")
        #expect(!a.permissive)
        var p = a
        p.result = 0
        #expect(p.permissive)
        p.denied = 0
        #expect(!p.permissive)
    }
}

@Suite("no_route: connect() refused by the routing table")
struct NoRouteTests {
    func connect(_ errno: Int32, to last: UInt8, routes: (any DropRouteSource)? = FakeRoutes(),
                 routing: SocketRouting? = nil) -> [Record] {
        var e = sysEngine()
        e.drops.routes = routes
        return e.ingest(call(.connect, errno: errno, local: Endpoint(addr: .any4, port: 0),
                             remote: Endpoint(addr: v4(203, 0, 113, last), port: 443), pid: 321, routing: routing))
    }

    @Test("the lookup is replayed with the socket's keys: its device, mark, owner, the TCP port")
    func socketKeys() throws {
        let e = SocketCallFailure(ts: 1, call: .connect, family: .ipv4, local: Endpoint(addr: .any4, port: 0),
                                  remote: Endpoint(addr: v4(203, 0, 113, 1), port: 443), task: TaskInfo(pid: 1, comm: "curl"),
                                  netns: hostNS, errno: 101, routing: SocketRouting(boundIfindex: 7, mark: 0x20, uid: 1000))
        let q = try #require(DropRouteQuery.of(connect: e))
        #expect(q.lookup.oif == 7 && q.lookup.mark == 0x20 && q.lookup.uid == 1000 && q.lookup.tcpDport == 443)
        #expect(q.lookup.tcpSport == nil && q.lookup.src == nil)
        var unbound = e
        unbound.routing = SocketRouting(uid: 0)
        unbound.local = Endpoint(addr: v4(10, 0, 0, 2), port: 40000)
        let u = try #require(DropRouteQuery.of(connect: unbound))
        #expect(u.lookup.oif == nil && u.lookup.mark == nil && u.lookup.uid == 0)
        #expect(u.lookup.src == v4(10, 0, 0, 2) && u.lookup.tcpSport == 40000)
    }

    @Test("a socket bound to a device that is down: bound_device_down, the device in the evidence and the lookup, bring it up or unbind")
    func boundDeviceDown() throws {
        let r = try #require(connect(101, to: 1, routing: SocketRouting(boundIfindex: 7, mark: 0x20, uid: 1000)).first)
        #expect(r.cause?.rawValue == "bound_device_down")
        let ev = try #require(r.noRouteEvidence)
        #expect(ev.boundDevice?["name"]?.stringValue == "wg0" && ev.boundDevice?["up"] == .bool(false))
        #expect(ev.routeLookup?["oif"]?.stringValue == "wg0" && ev.routeLookup?["mark"]?.intValue == 0x20
                && ev.routeLookup?["uid"]?.intValue == 1000)
        let hint = try #require(r.hint)
        #expect(hint.contains("bound to wg0 (SO_BINDTODEVICE), which is down") && hint.contains("ip link set wg0 up"), "\(hint)")
    }

    /// Every lookup answers a unicast route of the main table through one device.
    struct UnicastRoutes: DropRouteSource {
        var oif: UInt32
        var name: String
        func pin(_ drop: PacketDrop) {}
        func lookup(_ q: DropRouteQuery) -> DropRouteFindings {
            DropRouteFindings(route: RouteLookupResult(request: q.lookup, answer: .route(RouteGet.Route(type: 1, table: 254, oif: oif)),
                                                       oifName: name))
        }
    }

    /// `ip -6 route add <prefix> dev lo`: the lookup answers `unicast dev lo`.
    static let loopbackRoutes = UnicastRoutes(oif: 1, name: "lo")
    /// The main table's answer for a link-local destination (eth0's fe80::/64).
    static let linkLocalRoutes = UnicastRoutes(oif: 2, name: "eth0")

    @Test("an IPv6 route through lo: loopback_route, never 'a route exists now'; an IPv4 one is not")
    func loopbackRoute() throws {
        let dst = IPAddress(bytes: [0x20, 0x01, 0x0d, 0xb8, 0, 5] + [UInt8](repeating: 0, count: 9) + [1])
        let e = SocketCallFailure(ts: 1, call: .connect, family: .ipv6, local: Endpoint(addr: .any6, port: 0),
                                  remote: Endpoint(addr: dst, port: 443), task: TaskInfo(pid: 9, comm: "curl"),
                                  netns: hostNS, errno: 101)
        var engine = sysEngine()
        engine.drops.routes = Self.loopbackRoutes
        let r = try #require(engine.ingest(.socketCall(e)).first)
        #expect(r.cause?.rawValue == "loopback_route")
        let hint = try #require(r.hint)
        #expect(hint.contains("routes 2001:db8:5::1 through lo") && !hint.contains("exists now")
                && hint.contains("ip -6 route replace"), "\(hint)")
        let v4 = RouteLookupResult(request: RouteGet.Request(family: .ipv4, dst: v4(10, 0, 0, 1)), answer: .route(RouteGet.Route(type: 1, table: 254, oif: 1)))
        #expect(!v4.isLoopbackReject)
    }

    @Test("EINVAL for an IPv6 link-local destination without an interface: link_local_without_scope, the scope id as the fix; other EINVALs are not routes'")
    func linkLocalWithoutScope() throws {
        let linkLocal = IPAddress(high: 0xfe80_0000_0000_0000, low: 1)
        func failure(to addr: IPAddress, errno: Int32 = 22) -> SocketCallFailure {
            SocketCallFailure(ts: 1, call: .connect, family: .ipv6, local: Endpoint(addr: .any6, port: 0),
                              remote: Endpoint(addr: addr, port: 8080), task: TaskInfo(pid: 9, comm: "app"), netns: hostNS, errno: errno)
        }
        var engine = sysEngine()
        engine.drops.routes = Self.linkLocalRoutes
        let r = try #require(engine.ingest(.socketCall(failure(to: linkLocal))).first)
        #expect(r.reason == .noRoute && r.cause?.rawValue == "link_local_without_scope")
        let hint = try #require(r.hint)
        #expect(hint.contains("fe80::1 is an IPv6 link-local address, and the connect() named no interface") && !hint.contains("exists now")
                && hint.contains("fe80::1%<interface>"), "\(hint)")
        // A global address's EINVAL with a unicast route is not a routing failure; nor is fe80::/10's neighbour fec0::.
        #expect(engine.ingest(.socketCall(failure(to: IPAddress(high: 0x2001_0db8_0000_0000, low: 1)))).isEmpty)
        #expect(engine.ingest(.socketCall(failure(to: IPAddress(high: 0xfec0_0000_0000_0000, low: 1)))).isEmpty)
        #expect(IPAddress(high: 0xfebf_ffff_0000_0000, low: 0).isLinkLocalV6 && !IPAddress(high: 0xfe00_0000_0000_0000, low: 0).isLinkLocalV6)
    }

    @Test("a uid- or mark-routed client's fix shows its own lookup (ip route get ... mark ... uid ...), not root's")
    func ownLookupInFix() throws {
        let r = try #require(connect(13, to: 3, routing: SocketRouting(mark: 7, uid: 65534)).first)
        #expect(r.cause?.rawValue == "prohibit_route")
        #expect(r.hint?.contains("ip route get 203.0.113.3 mark 0x7 uid 65534;") == true, "\(r.hint ?? "")")
        let root = try #require(connect(13, to: 3, routing: SocketRouting(uid: 0)).first)
        #expect(root.hint?.contains("ip route get 203.0.113.3;") == true, "\(root.hint ?? "")")
    }

    @Test("a socket in a VRF whose table has no route: no_matching_route, said of the VRF's table, the route added there")
    func vrfWithoutRoute() throws {
        let r = try #require(connect(101, to: 1, routing: SocketRouting(boundIfindex: 8, uid: 0)).first)
        #expect(r.cause?.rawValue == "no_matching_route")
        #expect(r.noRouteEvidence?.boundDevice?["vrf"] == .bool(true) && r.noRouteEvidence?.routeLookup?["mark"] == nil)
        let hint = try #require(r.hint)
        #expect(hint.contains("bound to VRF blue") && hint.contains("VRF blue's table has no IPv4 route to 203.0.113.1")
                && hint.contains("vrf blue"), "\(hint)")
    }

    @Test("ENETUNREACH: no_matching_route, the failed lookup as evidence, the client named, a default-route fix")
    func noMatchingRoute() throws {
        let r = try #require(connect(101, to: 1).first)
        #expect(r.kind == .connectFailure && r.reason == .noRoute && r.cause?.rawValue == "no_matching_route")
        #expect(r.port == 443 && r.client?.pid == 321 && r.process?.pid == 321)
        let ev = try #require(r.noRouteEvidence)
        #expect(ev.errno == "ENETUNREACH" && ev.call == "connect")
        #expect(ev.routeLookup?["result"]?.stringValue == "no_route" && ev.routeLookup?["destination"]?.stringValue == "203.0.113.1")
        let hint = try #require(r.hint)
        #expect(hint.contains("no IPv4 route to 203.0.113.1") && hint.contains("ip route add default via"), "\(hint)")
    }

    @Test("EHOSTUNREACH, EACCES, EINVAL: the route type the lookup answers names the cause")
    func routeTypes() {
        #expect(connect(113, to: 2).first?.cause?.rawValue == "unreachable_route")
        #expect(connect(13, to: 3).first?.cause?.rawValue == "prohibit_route")
        #expect(connect(22, to: 4).first?.cause?.rawValue == "blackhole_route")
        #expect(connect(13, to: 3).first?.hint?.contains("ip route show table all type prohibit") == true)
    }

    @Test("EACCES without a prohibit answer stays an LSM denial; EINVAL without a blackhole is not reported")
    func notTheRoutes() {
        let lsm = connect(13, to: 9)
        #expect(lsm.first?.reason == .lsmDenied && lsm.first?.cause?.rawValue == "other_lsm")
        #expect(connect(22, to: 9).isEmpty)
        #expect(connect(13, to: 9, routes: nil).first?.reason == .lsmDenied)
    }

    @Test("a route that exists by the time of the lookup: the errno's cause, and the hint says the routes changed")
    func changedSince() throws {
        let r = try #require(connect(101, to: 5).first)
        #expect(r.cause?.rawValue == "no_matching_route")
        #expect(r.noRouteEvidence?.routeLookup?["type"]?.stringValue == "unicast")
        #expect(r.hint?.contains("the routes changed since") == true, "\(r.hint ?? "")")
    }

    @Test("without a route reader: the errno's cause, and the evidence says the lookup was not replayed")
    func noReader() throws {
        let r = try #require(connect(113, to: 2, routes: nil).first)
        #expect(r.cause?.rawValue == "unreachable_route")
        #expect(r.noRouteEvidence?.routeUnavailable?.contains("not replayed") == true)
    }
}
