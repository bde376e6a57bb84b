@testable import SynsightModel
@testable import SynsightAttribution
import Testing
import SynsightTestSupport

/// bind()/connect() refused by a cgroup BPF program (CgroupProgramDenial.swift):
/// which hooks are read, for whom, and the record naming the program.
@Suite("syscalls: cgroup BPF programs refusing bind and connect")
struct CgroupProgramDenialTests {
    static let sdBind = BPFProgramRef(id: 77, name: "sd_bind4", type: "cgroup_sock_addr", tag: "0011223344556677",
                                      kind: .cgroupBind4, target: "/system.slice/web.service",
                                      cgroupDir: "/sys/fs/cgroup/system.slice/web.service")

    static func engine(_ source: DropProgramsTests.Recording) -> AttributionEngine {
        var e = sysEngine()
        e.drops = DropState(programs: source)
        return e
    }

    /// One record of the cause (SchemaRecordsTests validates it).
    static func records() -> [Record] {
        var e = engine(DropProgramsTests.Recording(BPFProgramFindings(programs: [sdBind])))
        return run(&e, [call(errno: 1, local: Endpoint(addr: .any4, port: 8080))])
    }

    @Test("bind EPERM with systemd's sd_bind4 in effect: cgroup_bpf naming it, where it is attached, and SocketBindAllow=")
    func systemdSocketBindDeny() throws {
        let source = DropProgramsTests.Recording(BPFProgramFindings(programs: [Self.sdBind]))
        var e = Self.engine(source)
        let r = try single(run(&e, [call(errno: 1, local: Endpoint(addr: .any4, port: 8080), pid: 4410)]))
        #expect(r.kind == .denial && r.reason == .lsmDenied && r.cause?.rawValue == "cgroup_bpf")
        #expect(r.process?.pid == 4410)
        let q = try #require(source.queries.first)
        #expect(q.cgroupOf == 4410 && q.cgroupHooks == BPFAttachKind.bindHooks)
        guard case .array(let ps)? = r.evidence("bpf_programs") else {
            Issue.record("no bpf_programs: \(r)")
            return
        }
        #expect(ps.first?["id"]?.intValue == 77)
        #expect(ps.first?["owner"]?.stringValue == "systemd")
        #expect(ps.first?["attach"]?.stringValue == "cgroup bind4 /system.slice/web.service")
        let hint = try #require(r.hint)
        #expect(hint.contains("refused with EPERM by BPF program 77 \"sd_bind4\" (systemd) at cgroup bind4 /system.slice/web.service"), "\(hint)")
        #expect(hint.contains("`bpftool cgroup detach /sys/fs/cgroup/system.slice/web.service bind4 id 77`"), "\(hint)")
        #expect(hint.contains("SocketBindAllow= of <unit> (tcp:8080)"), "\(hint)")
        // The caller's unit, when its workload says it, takes the placeholder's place.
        var f = Advice.Facts(port: 8080, call: .bind, bpfOwner: .systemd)
        f.unit = "web.service"
        let fix = Advice.for(reason: .lsmDenied, cause: .lsmDenied(.cgroupBPF), facts: f).fix
        #expect(fix.contains("SocketBindAllow= of web.service (tcp:8080)") && fix.contains("systemctl cat web.service"), "\(fix)")
    }

    @Test("connect EPERM reads the connect hooks; an unknown owner's program: its policy, or detach it")
    func connectHook() throws {
        var p = Self.sdBind
        p.name = "deny_egress"
        p.kind = .cgroupConnect4
        let source = DropProgramsTests.Recording(BPFProgramFindings(programs: [p]))
        var e = Self.engine(source)
        let r = try single(run(&e, [call(.connect, errno: 1, remote: Endpoint(addr: v4(10, 0, 0, 5), port: 5432))]))
        #expect(r.cause?.rawValue == "cgroup_bpf" && r.client?.pid == 500)
        #expect(source.queries.first?.cgroupHooks == BPFAttachKind.connectHooks)
        #expect(r.hint?.contains("whoever attached the program") == true, "\(r.hint ?? "")")
    }

    @Test("no program in effect (or none readable): other_lsm as before, and listen() is never asked")
    func noProgram() throws {
        let source = DropProgramsTests.Recording(BPFProgramFindings(unavailable: ["process 500 is gone"]))
        var e = Self.engine(source)
        let r = try single(run(&e, [call(errno: 1, local: Endpoint(addr: .any4, port: 8080))]))
        #expect(r.cause?.rawValue == "other_lsm")
        let l = try single(run(&e, [call(.listen, errno: 1, local: Endpoint(addr: .any4, port: 8080))]))
        #expect(l.cause?.rawValue == "other_lsm")
        #expect(source.queries.count == 1)
    }
}
