import CSynsightABI
import Glibc
import SynsightModel
@testable import SynsightKernel
import Testing

/// Probe results as this repository's CI host has them (6.18: tracepoints,
/// no BPF trampolines, no kprobes), then edited per test.
func hostLike(_ edit: (inout KernelFeatures) -> Void = { _ in }) -> KernelFeatures {
    var f = KernelFeatures()
    f.btf = .supports("/sys/kernel/btf/vmlinux")
    f.privileges = .supports("root", "running as root")
    f.tcpSendResetNoSocket = .supports("tp_btf/tcp_send_reset")
    f.kfreeSkbNoSocket = .supports("tp_btf/kfree_skb")
    f.fentrySendReset = .unsupported("BPF trampolines refused (EPERM)")
    f.kprobeSendReset = .unsupported("kernel built without CONFIG_KPROBES")
    f.inetSockSetState = .supports("tp_btf/inet_sock_set_state")
    f.schedProcessExit = .supports("tp_btf/sched_process_exit")
    f.syscalls.trampoline = .unsupported("BPF trampolines refused (EPERM)")
    f.syscalls.classic = .supports("syscalls:sys_{enter,exit}_{bind,listen,connect}")
    f.syscalls.raw = .supports("tp_btf/sys_enter")
    f.syscalls.selinuxAudited = .supports("tp_btf/selinux_audited")
    f.syscalls.landlock = .supports("syscalls:sys_exit_landlock_restrict_self")
    f.syscalls.connectExitOnly = true
    f.firewall.drop = .supports("tp_btf/kfree_skb")
    f.firewall.icmp = .supports("tp_btf/icmp_send")
    f.firewall.retransmit = .supports("tp_btf/tcp_retransmit_skb")
    f.firewall.softError = .supports("tp_btf/inet_sk_error_report")
    f.overflow.connRequestFentry = .unsupported("BPF trampolines refused (EPERM)")
    f.overflow.connRequestKprobe = .unsupported("kernel built without CONFIG_KPROBES")
    f.overflow.consumeSkb = .supports("tp_btf/consume_skb")
    f.overflow.ackDrop = .supports("tp_btf/kfree_skb")
    f.overflow.ackReset = .supports("tp_btf/tcp_send_reset")
    f.overflow.synRecv = .unsupported("ACK-stage overflows are traced")
    f.overflow.iterTCP = .supports("iter/tcp")
    f.overflow.acceptFexit = .unsupported("BPF trampolines not in use for syscalls")
    f.overflow.acceptTracepoints = .supports("syscalls:sys_exit_accept4, syscalls:sys_exit_accept")
    f.connectWithoutStateHook = .supports("cgroup/connect{4,6}")
    f.tcpDestroySock = .supports("tp_btf/tcp_destroy_sock")
    f.resetTTL.reset = .unsupported("BPF trampolines refused (EPERM); kernel built without CONFIG_KPROBES")
    f.resetTTL.baseline = f.resetTTL.reset
    edit(&f)
    return f
}

/// A 6.1 guest of the kernel matrix: BPF trampolines and kprobes, no
/// tcp_send_reset reasons, no consume_skb call site.
func trampolineKernel(_ edit: (inout KernelFeatures) -> Void = { _ in }) -> KernelFeatures {
    hostLike { f in
        f.tcpSendResetNoSocket = .unsupported("tcp_send_reset has no reset reason before 6.10")
        f.fentrySendReset = .supports("fentry/tcp_v{4,6}_send_reset")
        f.kprobeSendReset = .supports("kprobe/tcp_v{4,6}_send_reset")
        f.syscalls.trampoline = .supports("fentry+fexit/__sys_{bind,listen} + fexit/__sys_connect")
        f.syscalls.landlock = .supports("fexit/__x64_sys_landlock_restrict_self")
        f.overflow.connRequestFentry = .supports("fentry/tcp_conn_request")
        f.overflow.consumeSkb = .unsupported("tcp_conn_request is hooked directly")
        f.overflow.ackDrop = .unsupported("no TCP_LISTEN_OVERFLOW drop reason before 6.15")
        f.overflow.ackReset = .unsupported("tcp_send_reset has no reset reason before 6.10")
        f.overflow.synRecv = .supports("fexit/tcp_v{4,6}_syn_recv_sock")
        f.overflow.synRecvHook = .fexit
        f.overflow.connRequestExit = .supports("fexit/tcp_conn_request")
        f.overflow.acceptFexit = .supports("fexit/__sys_accept4")
        f.overflow.acceptTracepoints = .unsupported("fexit/__sys_accept4 is used")
        f.resetTTL.reset = .supports("fentry/tcp_reset")
        f.resetTTL.baseline = .supports("fentry/tcp_finish_connect")
        f.resetTTL.hook = .fentry
        edit(&f)
    }
}

@Suite("probe plan: programs per reason area, from probe results")
struct ProbePlanTests {
    @Test("the host's plan loads exactly the programs of its hooks, one no-listener group")
    func hostPlan() {
        let plan = ProbePlan(hostLike())
        #expect(plan.resetHook == .tcpSendReset)
        #expect(plan.programs == [
            .onTcpSendReset, .onProcessExit, .connConnect4, .connConnect6, .onSkErrorReport, .runReapListeners,
            .tmoDestroySock, .runTmoWatch, .onKfreeSkb, .fwIcmpSend, .fwSynRetransmit,
            .ovfConsumeSkb, .runOvfWatch, .iterListeners, .ovfExitAccept4, .ovfExitAccept,
            .scTpEnterBind, .scTpExitBind, .scTpEnterListen, .scTpExitListen, .scTpExitConnect,
            .scSelinuxAudited, .scTpExitLandlock, .scLandlockFork,
        ])
        // Every area runs but injected resets (no fentry or kprobe on tcp_reset here).
        #expect(plan.areas.allSatisfy { $0.plan.runs || $0.area == .injectedResets })
        #expect(!plan.plan(for: .injectedResets).runs)
        #expect(plan.noStateHook)
        #expect(plan.configFlags & UInt32(SYN_CFG_NO_STATE_HOOK.rawValue) != 0)
        #expect(plan.configFlags & UInt32(SYN_CFG_CONNECT_EXIT_ONLY.rawValue) != 0)
        #expect(plan.configFlags & UInt32(SYN_CFG_ACK_DROP_SYN_RECV.rawValue) == 0)
        #expect(throws: Never.self) { try plan.requireTraceable() }
    }

    @Test("where Landlock is unsupported its fork and exit programs are not selected, and the area says why")
    func landlockUnsupported() throws {
        let why = ProbeResult.unsupported("no landlock_restrict_self syscall tracepoint (Landlock needs 5.13+)")
        let plan = ProbePlan(hostLike { $0.syscalls.landlock = why })
        guard case .cannotRun(let cannot) = plan.plan(for: .landlock) else {
            Issue.record("landlock area runs without Landlock")
            return
        }
        #expect(cannot.probe == why)
        #expect(plan.programs.isDisjoint(with: [.scLandlockFork, .scTpExitLandlock, .scFxExitLandlock]))
        // on_process_exit stays: listener exits need it (its Landlock handler is then idle).
        #expect(plan.programs == ProbePlan(hostLike()).programs.subtracting([.scLandlockFork, .scTpExitLandlock]))
    }

    @Test("an inconclusive probe (no privileges) makes an area not runnable with its errno, never 'unsupported'")
    func inconclusive() throws {
        let plan = ProbePlan(hostLike { f in
            f.syscalls.classic = .notProbed("tracefs")
            f.syscalls.raw = .notProbed("tp_btf/sys_enter")
        })
        guard case .cannotRun(let cannot) = plan.plan(for: .syscalls),
              case .inconclusive(let i) = cannot.probe else {
            Issue.record("syscalls area: \(plan.plan(for: .syscalls))")
            return
        }
        #expect(i.what == "tp_btf/sys_enter")
        #expect(i.errno == EPERM)
        #expect(!plan.plan(for: .landlock).runs)
        #expect(plan.programs.isDisjoint(with: BPFProgram.allCases.filter { $0.rawValue.hasPrefix("sc_") }))
    }

    @Test("no-listener hooks all inconclusive: tracing refuses to start and says it needs root")
    func noListenerInconclusive() {
        let plan = ProbePlan(hostLike { f in
            f.privileges = .unsupported("not root and missing CAP_BPF/CAP_PERFMON")
            f.tcpSendResetNoSocket = .notProbed("tp_btf/tcp_send_reset")
            f.kfreeSkbNoSocket = .notProbed("tp_btf/kfree_skb")
        })
        guard case .cannotRun(let cannot) = plan.plan(for: .noListener) else {
            Issue.record("no-listener area runs")
            return
        }
        #expect(cannot.probe.isInconclusive)
        #expect(cannot.error.what == "cannot tell which hook sees no-listener resets")
        #expect(plan.resetHook == nil)
        #expect(throws: KernelError.self) { try plan.requireTraceable() }
    }

    @Test("a forced reset hook is the only no-listener group; an unsupported one is refused with the probe's reason")
    func forcedReset() {
        let kfree = ProbePlan(hostLike { $0.choices.reset = .kfreeSkb })
        #expect(kfree.plan(for: .noListener).programs == [.onKfreeSkb])
        #expect(kfree.programs.isDisjoint(with: [.rstFentryV4, .rstFentryV6, .rstKprobeV4, .rstKprobeV6]))
        // kfree_skb's program is shared: the flag routes its no-socket RSTs to the no-listener handler.
        #expect(kfree.configFlags & UInt32(SYN_CFG_RST_KFREE_SKB.rawValue) != 0)
        #expect(kfree.configFlags & UInt32(SYN_CFG_RST_SEND_RESET.rawValue) == 0)
        #expect(ProbePlan(hostLike()).configFlags & UInt32(SYN_CFG_RST_SEND_RESET.rawValue) != 0)
        #expect(ProbePlan(hostLike()).configFlags & UInt32(SYN_CFG_RST_KFREE_SKB.rawValue) == 0)
        let fentry = ProbePlan(hostLike { $0.choices.reset = .fentry })
        guard case .cannotRun(let cannot) = fentry.plan(for: .noListener) else {
            Issue.record("fentry forced on a kernel that refuses it")
            return
        }
        #expect(cannot.error.what == "hook fentry/tcp_v{4,6}_send_reset was requested")
        #expect(cannot.error.why == "BPF trampolines refused (EPERM)")
    }

    @Test("a connect() given up: tcp_destroy_sock and its watch without the state-change hook, attached on demand; none with it")
    func abandonedConnects() {
        let plan = ProbePlan(hostLike())
        #expect(plan.plan(for: .connections).programs == [
            .onProcessExit, .connConnect4, .connConnect6, .onSkErrorReport, .runReapListeners, .tmoDestroySock, .runTmoWatch,
        ])
        #expect(BPFProgram.tmoDestroySock.attachOnDemand && BPFProgram.tmoDestroySock.cadence.healthy)
        #expect(BPFProgram.tmoDestroySock.cadence.trigger.contains("attached only while a connect()'s SYN is unanswered"))
        #expect(BPFProgram.runTmoWatch.runOnDemand && !BPFProgram.runTmoWatch.cadence.healthy)
        let old = ProbePlan(hostLike { $0.tcpDestroySock = .unsupported("tp_btf/tcp_destroy_sock: ENOENT") })
        #expect(!old.plan(for: .connections).programs.contains(.tmoDestroySock))
        #expect(!old.plan(for: .connections).programs.contains(.runTmoWatch))
        let state = ProbePlan(hostLike { $0.connectWithoutStateHook = .unsupported("x") })
        #expect(!state.plan(for: .connections).programs.contains(.tmoDestroySock))
    }

    @Test("without the state-change-free set, inet_sock_set_state replaces cgroup/connect and the sweep")
    func stateHook() {
        let plan = ProbePlan(hostLike { $0.connectWithoutStateHook = .unsupported("disabled by --force-hook connect=inet_sock_set_state") })
        #expect(plan.plan(for: .connections).programs == [.onProcessExit, .sockState])
        #expect(!plan.noStateHook)
        #expect(plan.configFlags & UInt32(SYN_CFG_NO_STATE_HOOK.rawValue) == 0)
        let neither = ProbePlan(hostLike { f in
            f.connectWithoutStateHook = .unsupported("no cgroup v2")
            f.inetSockSetState = .unsupported("tp_btf/inet_sock_set_state: ENOENT")
        })
        #expect(throws: KernelError.self) { try neither.requireTraceable() }
    }

    @Test("a trampoline kernel: fentry/fexit groups, no syscall tracepoint, no kprobe")
    func trampolines() {
        let plan = ProbePlan(trampolineKernel())
        #expect(plan.resetHook == .fentry)
        #expect(plan.plan(for: .noListener).programs == [.rstFentryV4, .rstFentryV6])
        #expect(plan.plan(for: .syscalls).programs == [
            .scFxEnterBind, .scFxExitBind, .scFxEnterListen, .scFxExitListen, .scFxExitConnect,
            .scSelinuxAudited,
        ])
        #expect(plan.plan(for: .landlock).programs == [.scFxExitLandlock, .scLandlockFork, .onProcessExit])
        #expect(plan.plan(for: .overflow).programs == [.ovfFentryConnRequest, .runOvfWatch, .ovfFexitConnRequest,
                                                       .ovfFexitSynRecvV4, .ovfFexitSynRecvV6, .iterListeners])
        // A SYN left unanswered: beside the fentry, which runs before the decision, its fexit.
        #expect(plan.features.overflow.unanswered.hook?.name == "fexit/tcp_conn_request")
        // Armed on anomaly by the watch: none runs per healthy connection.
        let attached = plan.plan(for: .overflow).programs.filter { !$0.runOnDemand && $0 != .iterListeners }
            + plan.plan(for: .fdExhausted).programs
        let notArmed = attached.filter { !$0.armedWithOverflow }
        #expect(notArmed.isEmpty)
        #expect(plan.plan(for: .fdExhausted).programs == [.ovfFxExitAccept4])
        #expect(!plan.programs.contains { $0.section.hasPrefix("tracepoint/") || $0.section.hasPrefix("kprobe/") })
        #expect(plan.configFlags & UInt32(SYN_CFG_ACK_DROP_SYN_RECV.rawValue) != 0)
        #expect(plan.configFlags & UInt32(SYN_CFG_ACK_RESET_SYN_RECV.rawValue) != 0)
    }

    @Test("injected resets: fentry or kprobe on tcp_reset, the baseline program attached on demand, or why not")
    func injectedResets() throws {
        #expect(ProbePlan(trampolineKernel()).plan(for: .injectedResets).programs == [.rttlFentryReset, .rttlFentryFinishConnect])
        let kprobe = ProbePlan(trampolineKernel { $0.resetTTL.hook = .kprobe })
        #expect(kprobe.plan(for: .injectedResets).programs == [.rttlKprobeReset, .rttlKprobeFinishConnect])
        #expect(BPFProgram.allCases.filter(\.attachOnDemand).sorted { $0.rawValue < $1.rawValue }
                == [.ovfConsumeSkb, .rttlFentryFinishConnect, .rttlKprobeFinishConnect, .tmoDestroySock])
        #expect(!BPFProgram.rttlFentryReset.attachOnDemand && !BPFProgram.rttlFentryReset.cadence.healthy)
        #expect(BPFProgram.rttlFentryFinishConnect.cadence.trigger.contains("only after a refusal"))
        #expect(BPFProgram.ovfConsumeSkb.cadence.trigger.contains("attached only while a listener's queue is full"))
        #expect(BPFProgram.runOvfWatch.runOnDemand && !BPFProgram.runOvfWatch.cadence.healthy)
        guard case .cannotRun(let why) = ProbePlan(hostLike()).plan(for: .injectedResets) else {
            Issue.record("injected resets run without fentry or kprobes")
            return
        }
        #expect(why.needs == "fentry or kprobe on tcp_reset and tcp_finish_connect")
        #expect(why.probe.detail.contains("CONFIG_KPROBES"))
    }

    @Test("overflow forced to kprobes (--force-hook overflow=kprobe): kprobe and kretprobe programs, no fentry/fexit")
    func overflowKprobes() throws {
        let plan = ProbePlan(trampolineKernel { f in
            f.overflow.connRequestFentry = .unsupported("disabled by --force-hook overflow=kprobe")
            f.overflow.connRequestKprobe = .supports("kprobe/tcp_conn_request")
            f.overflow.synRecv = .supports("kretprobe/tcp_v{4,6}_syn_recv_sock")
            f.overflow.synRecvHook = .kretprobe
            f.overflow.connRequestExit = .supports("kretprobe/tcp_conn_request")
        })
        #expect(plan.plan(for: .overflow).programs == [
            .ovfKprobeConnRequest, .runOvfWatch, .ovfKretprobeConnRequest, .ovfKprobeSynRecvV4, .ovfKretprobeSynRecvV4,
            .ovfKprobeSynRecvV6, .ovfKretprobeSynRecvV6, .iterListeners,
        ])
        #expect(plan.features.overflow.unanswered.hook?.name == "kretprobe/tcp_conn_request")
        // Armed entries first: a kretprobe or fexit never runs without its call's entry.
        let armed = BPFProgram.allCases.filter { $0.armedWithOverflow }.sorted { !$0.isReturnProbe && $1.isReturnProbe }
        let firstReturn = try #require(armed.firstIndex { $0.isReturnProbe })
        let lastEntry = armed.lastIndex { !$0.isReturnProbe } ?? -1
        #expect(firstReturn > lastEntry)
    }

    @Test("every program of the object is selected by some kernel's plan (none is dead weight)")
    func everyProgramReachable() {
        let plans = [
            hostLike(), trampolineKernel(),
            hostLike { $0.choices.reset = .kfreeSkb; $0.connectWithoutStateHook = .unsupported("x") },
            hostLike { $0.syscalls.classic = .unsupported("x"); $0.syscalls.connectExitOnly = false },
            hostLike { $0.syscalls.connectExitOnly = false },
            trampolineKernel { f in
                f.choices.reset = .kprobe
                f.overflow.connRequestFentry = .unsupported("x")
                f.overflow.connRequestKprobe = .supports("kprobe/tcp_conn_request")
                f.overflow.synRecvHook = .kretprobe
                f.overflow.connRequestExit = .supports("kretprobe/tcp_conn_request")
                f.resetTTL.hook = .kprobe
            },
        ].map(ProbePlan.init)
        let reached = plans.reduce(into: Set<BPFProgram>()) { $0.formUnion($1.programs) }
        #expect(Set(BPFProgram.allCases).subtracting(reached) == [])
    }

    @Test("--force-hook specs parse into choices; unknown areas and hooks are refused")
    func forceHook() {
        var c = HookChoices()
        #expect(c.force("syscall=raw")?.syscallEntry == .raw)
        #expect(c.force("overflow=kprobe")?.overflow == .kprobe)
        #expect(c.force("connect=inet_sock_set_state")?.connect == .stateChange)
        #expect(c.force("reset=kfree_skb")?.reset == .kfreeSkb)
        #expect(c.force("resetttl=kprobe")?.resetTTL == .kprobe)
        #expect(c.force("resetttl=fentry") == nil)
        #expect(c.force("syscall=classic") == nil)
        #expect(c.force("overflow") == nil)
        #expect(c.force("nat=kprobe") == nil)
    }
}

/// doctor's packet_dropped families, from the plan and a kernel's reason
/// names (synthetic: 6.1 lacks TCP-AO and the route reasons of 6.18).
@Suite("doctor: what each drop family can see")
struct DropFamilyCoverageTests {
    static let kernel61 = DropReasonNames(core: [("SKB_DROP_REASON_NOT_SPECIFIED", 1), ("SKB_DROP_REASON_IP_RPFILTER", 11),
                                                 ("SKB_DROP_REASON_TCP_CSUM", 4), ("SKB_DROP_REASON_IP_INNOROUTES", 40),
                                                 ("SKB_DROP_REASON_TC_INGRESS", 60), ("SKB_DROP_REASON_FUTURE_THING", 70)])
    static let readers = DropFamilyCoverage.Readers(routeLookup: .supports("rtnetlink RTM_GETROUTE"), cgroupV2: true)

    static func line(_ all: [DropFamilyCoverage], _ cause: DropCause) -> DropFamilyCoverage {
        all.first { $0.cause == cause }!
    }

    @Test("one entry per cause family, in DropCause order")
    func everyFamily() {
        let all = DropFamilyCoverage.of(ProbePlan(hostLike()), names: Self.kernel61, readers: Self.readers)
        #expect(all.map(\.cause) == DropCause.allCases)
    }

    @Test("reasons this kernel has and lacks; a family without any is degraded, saying why")
    func reasons() {
        let all = DropFamilyCoverage.of(ProbePlan(hostLike()), names: Self.kernel61, readers: Self.readers)
        let rp = Self.line(all, .rpFilter), route = Self.line(all, .noRoute), ao = Self.line(all, .tcpAO)
        #expect(!rp.unavailable && rp.detail.hasPrefix("reason ip_rpfilter; the interface, its rp_filter"), "\(rp.detail)")
        #expect(rp.detail.contains("route back to the source, read by RTM_GETROUTE"))
        #expect(route.detail.hasPrefix("reason ip_innoroutes (not in this kernel: ip_outnoroutes); the failed lookup replayed"), "\(route.detail)")
        #expect(ao.unavailable && ao.detail.contains("none of its reasons (tcp_auth_hdr, tcp_aonotfound"), "\(ao.detail)")
        #expect(Self.line(all, .openvswitch).unavailable)
        let other = Self.line(all, .other)
        #expect(!other.unavailable && other.detail.contains("(1 in this kernel: future_thing)"), "\(other.detail)")
        #expect(Self.line(all, .bpfProgram).detail.contains("cgroup inet egress (bpf_prog_query)"))
    }

    @Test("degraded readers: no route lookups, no cgroup v2")
    func degradedReaders() {
        let readers = DropFamilyCoverage.Readers(routeLookup: .unsupported("socket(AF_NETLINK): EAFNOSUPPORT"), cgroupV2: false)
        let all = DropFamilyCoverage.of(ProbePlan(hostLike()), names: Self.kernel61, readers: readers)
        #expect(Self.line(all, .rpFilter).detail.contains("route back UNAVAILABLE (socket(AF_NETLINK): EAFNOSUPPORT)"))
        #expect(Self.line(all, .noRoute).detail.contains("lookup that failed UNAVAILABLE"))
        #expect(Self.line(all, .bpfProgram).detail.contains("cgroup programs UNAVAILABLE (no cgroup v2 hierarchy mounted)"))
    }

    @Test("the plan says the drop program cannot load: every family is unavailable, with the plan's reason")
    func planCannotRun() {
        let plan = ProbePlan(hostLike { $0.firewall.drop = .unsupported("no kfree_skb drop reasons before 5.18") })
        let all = DropFamilyCoverage.of(plan, names: Self.kernel61, readers: Self.readers)
        #expect(all.allSatisfy { $0.unavailable && $0.detail.contains("no kfree_skb drop reasons before 5.18") })
        let unnamed = DropFamilyCoverage.of(ProbePlan(hostLike()), names: DropReasonNames(), readers: Self.readers)
        #expect(unnamed.allSatisfy { $0.unavailable })
    }
}
