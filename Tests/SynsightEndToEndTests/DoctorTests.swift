import Foundation
import Testing

/// `synsight doctor` on the real kernel. A hook the kernel is new enough for
/// must be the one used: the kernel's own BTF (its string table) says which
/// features exist, independently of synsight's probes.
@Suite("doctor, end to end", .enabled(if: Privileged.enabled))
struct DoctorTests {
    static let btfStrings: Data = (try? Data(contentsOf: URL(fileURLWithPath: "/sys/kernel/btf/vmlinux"))) ?? Data()

    static func kernelHas(_ name: String) -> Bool {
        // BTF names are NUL-terminated in the string section.
        btfStrings.range(of: Data([0] + Array(name.utf8) + [0])) != nil
    }

    func doctor() throws -> String {
        try sh([TraceSession.binary, "doctor"])
    }

    @Test("one program per kernel hook: no hook in doctor's cost section lists two programs")
    func oneProgramPerHook() throws {
        try Privileged.check()
        let out = try doctor()
        let lines = out.split(separator: "\n")
        let start = try #require(lines.firstIndex { $0.hasPrefix("cost (the ") }, "\(out)")
        // `    <hook>  <program>[, <program>...]: <when it runs>` until the next section.
        let hookLines = lines[(start + 1)...].prefix { !$0.isEmpty && $0.hasPrefix("  ") }
            .filter { $0.hasPrefix("    ") && ($0.contains("/") || $0.contains("raw_tp")) }
        #expect(hookLines.count >= 10, "\(out)")
        for l in hookLines {
            let programs = l.drop { $0 == " " }.drop { $0 != " " }.prefix { $0 != ":" }
            #expect(!programs.contains(","), "two programs on one hook: \(l)")
        }
        #expect(hookLines.contains { $0.contains("tp_btf/kfree_skb") && $0.contains("on_kfree_skb") }, "\(out)")
    }

    @Test("no_listener uses tcp_send_reset where the kernel has reset reasons (6.10+)")
    func noListenerHook() throws {
        try Privileged.check()
        let out = try doctor()
        let line = try #require(out.split(separator: "\n").first { $0.contains("no_listener") })
        if Self.kernelHas("SK_RST_REASON_NO_SOCKET") {
            #expect(line.contains("tp_btf/tcp_send_reset"), "\(line)")
        } else {
            #expect(!line.contains("UNAVAILABLE") || !Self.kernelHas("SKB_DROP_REASON_NO_SOCKET"), "\(line)")
        }
    }

    @Test("ACK-stage overflow uses TCP_LISTEN_OVERFLOW where the kernel has it (6.15+)")
    func ackStageHook() throws {
        try Privileged.check()
        let out = try doctor()
        let line = try #require(out.split(separator: "\n").first { $0.contains("accept_queue_full") })
        #expect(!line.contains("SYN stage UNAVAILABLE"), "\(line)")
        if Self.kernelHas("SKB_DROP_REASON_TCP_LISTEN_OVERFLOW") {
            #expect(line.contains("kfree_skb TCP_LISTEN_OVERFLOW"), "\(line)")
        }
    }

    @Test("packet_dropped: kfree_skb, the reasons named from this kernel's BTF, its subsystems")
    func packetDropped() throws {
        try Privileged.check()
        let out = try doctor()
        let line = try #require(out.split(separator: "\n").first { $0.contains("packet_dropped") })
        guard Self.kernelHas("SKB_DROP_REASON_NETFILTER_DROP") else {
            #expect(line.contains("UNAVAILABLE"), "\(line)")
            return
        }
        #expect(line.contains("tp_btf/kfree_skb"), "\(line)")
        #expect(line.contains("reasons named from BTF"), "\(line)")
        #expect(line.contains("openvswitch") == Self.kernelHas("SKB_DROP_REASON_SUBSYS_OPENVSWITCH"), "\(line)")
        // Root reads real addresses from kallsyms.
        #expect(line.contains("locations named from /proc/kallsyms"), "\(line)")
    }

    @Test("packet_dropped: a line per cause family, its reasons as this kernel's BTF has them, how its actor is named")
    func packetDropFamilies() throws {
        try Privileged.check()
        let out = try doctor()
        let lines = out.split(separator: "\n").map(String.init)
        let start = try #require(lines.firstIndex { $0.hasPrefix("  packet_dropped") }, "\(out)")
        let families = lines[(start + 1)...].prefix { $0.hasPrefix("    ") }
        func line(_ family: String) -> String { families.first { $0.hasPrefix("    \(family) ") } ?? "" }
        guard Self.kernelHas("SKB_DROP_REASON_NETFILTER_DROP") else {
            #expect(families.allSatisfy { $0.contains("UNAVAILABLE") }, "\(out)")
            return
        }
        // Each family lists exactly the reasons the kernel's BTF has (read here independently).
        for (family, reasons) in [("rp_filter", ["IP_RPFILTER"]), ("no_route", ["IP_INNOROUTES", "IP_OUTNOROUTES"]),
                                  ("bpf_program", ["TC_INGRESS", "TC_EGRESS", "XDP"]), ("tcp_ao", ["TCP_AONOTFOUND"]),
                                  ("min_ttl", ["TCP_MINTTL"]), ("xfrm_policy", ["XFRM_POLICY"])] {
            let l = line(family)
            #expect(!l.isEmpty, "no line for \(family): \(out)")
            // "reasons a, b (not in this kernel: c); <actor>": the names before the parenthesis.
            let listed = l.split(separator: ";").first.map { String($0.split(separator: "(").first ?? "") } ?? ""
            let names = Set(listed.split { $0 == " " || $0 == "," }.map(String.init))
            for r in reasons {
                let named = names.contains(r.lowercased()) && !l.contains("UNAVAILABLE")
                #expect(named == Self.kernelHas("SKB_DROP_REASON_" + r), "\(family)/\(r): \(l)")
            }
        }
        if Self.kernelHas("SKB_DROP_REASON_IP_RPFILTER") {
            #expect(line("rp_filter").contains("route back to the source, read by RTM_GETROUTE"), "\(line("rp_filter"))")
        }
        if Self.kernelHas("SKB_DROP_REASON_IP_INNOROUTES") {
            #expect(line("no_route").contains("failed lookup replayed by RTM_GETROUTE"), "\(line("no_route"))")
        }
        #expect(line("bpf_program").contains("tc filters (rtnetlink)"), "\(line("bpf_program"))")
        #expect(line("openvswitch").contains("UNAVAILABLE") != Self.kernelHas("SKB_DROP_REASON_SUBSYS_OPENVSWITCH"), "\(line("openvswitch"))")
        #expect(line("other").hasPrefix("    other") && line("other").contains("by its BTF name"), "\(out)")
    }

    @Test("every reason is served or says why not; nothing is left 'not implemented'")
    func everyReasonAccountedFor() throws {
        try Privileged.check()
        let out = try doctor()
        for reason in ["no_listener", "accept_queue_full", "syn_queue_full", "firewall_reject", "firewall_drop",
                       "address_in_use", "privileged_port", "address_not_available", "lsm_denied",
                       "fd_exhausted", "ephemeral_ports_exhausted", "packet_dropped", "connect_timeout"] {
            #expect(out.contains("  \(reason)"), "doctor does not mention \(reason)")
        }
        #expect(!out.contains("not implemented"))
    }

    @Test("the plan: one line per reason area; Landlock's fork/exit programs are planned only where Landlock is served")
    func planSection() throws {
        try Privileged.check()
        let lines = try doctor().split(separator: "\n").map(String.init)
        for area in ["noListener", "connections", "firewall", "packetDrops", "overflow", "fdExhausted", "syscalls", "landlock"] {
            #expect(lines.contains { $0.hasPrefix("  \(area) ") }, "no plan line for \(area)")
        }
        let lsm = try #require(lines.first { $0.hasPrefix("  lsm_denied") })
        let served = lsm.contains("Landlock via")
        let landlock = try #require(lines.first { $0.hasPrefix("  landlock ") })
        #expect(landlock.contains("sc_landlock_fork") == served, "\(landlock) / \(lsm)")
        #expect(landlock.contains("CANNOT RUN") == !served, "\(landlock)")
        // The cost section lists what is attached: the same programs.
        #expect(lines.contains { $0.contains("sc_landlock_fork:") } == served)
    }

    @Test("--force-hook syscall=raw: the syscall areas plan the raw_syscalls programs and no other group")
    func forcedSyscallHook() throws {
        try Privileged.check()
        let lines = try sh([TraceSession.binary, "doctor", "--force-hook", "syscall=raw"]).split(separator: "\n").map(String.init)
        let plan = try #require(lines.first { $0.hasPrefix("  syscalls ") })
        #expect(plan.contains("sc_raw_enter, sc_raw_exit"), "\(plan)")
        #expect(!plan.contains("sc_tp_") && !plan.contains("sc_fx_"), "\(plan)")
        let inUse = try #require(lines.first { $0.hasPrefix("  address_in_use ") })
        #expect(inUse.contains("tp_btf/sys_enter + sys_exit (raw_syscalls)"), "\(inUse)")
        #expect(!lines.contains { $0.contains("tracepoint/syscalls/sys_enter_bind") }, "a classic syscall tracepoint is still planned")
    }

    @Test("trace --log-level debug: swift-log diagnostics on stderr name the planned programs; the default level prints none")
    func debugLogLevel() throws {
        try Privileged.check()
        let debug = try sh([TraceSession.binary, "trace", "--duration", "1", "--log-level", "debug", "--force-hook", "syscall=raw"])
        let line = try #require(debug.split(separator: "\n").first { $0.contains("loading the planned programs:") }, "\(debug)")
        #expect(line.contains("debug"), "\(line)")
        #expect(line.contains("sc_raw_enter") && !line.contains("sc_tp_enter_bind"), "\(line)")
        let quiet = try sh([TraceSession.binary, "trace", "--duration", "1"])
        #expect(!quiet.contains("loading the planned programs"), "\(quiet)")
    }

    @Test("not root: a one-line error naming what to do, and a non-zero exit")
    func notRoot() throws {
        try Privileged.check()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        p.arguments = ["--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps=-all",
                       TraceSession.binary, "trace", "--duration", "1"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 1, "\(text)")
        #expect(text.hasPrefix("synsight: error:"))
        #expect(text.contains("sudo") || text.contains("CAP_BPF"))
    }

    /// Without privileges a probe's EPERM says nothing about the kernel:
    /// doctor must say it needs root and which checks could not run, not
    /// report hooks or reasons as missing.
    @Test("not root: doctor says it needs root and names the checks it could not run, blaming no kernel feature")
    func doctorWithoutRoot() throws {
        try Privileged.check()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        p.arguments = ["--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps=-all", TraceSession.binary, "doctor"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 1)
        let lines = text.split(separator: "\n").map(String.init)
        let headline = try #require(lines.first { $0.hasPrefix("synsight doctor needs root") }, "\(text)")
        #expect(headline.contains("could not run (tp_btf/tcp_send_reset, "), "\(headline)")
        let hook = try #require(lines.first { $0.contains("tp_btf/tcp_send_reset (no-socket)") })
        #expect(hook.hasPrefix("  ?  "), "\(hook)")
        #expect(hook.contains("not probed, needs root"), "\(hook)")
        let noListener = try #require(lines.first { $0.hasPrefix("  no_listener ") })
        #expect(noListener.contains("UNKNOWN -- not probed without root"), "\(noListener)")
        #expect(!text.contains("UNAVAILABLE"), "a reason is reported missing without having been probed: \(text)")
        #expect(!text.contains("EPERM"), "\(text)")
    }
}
