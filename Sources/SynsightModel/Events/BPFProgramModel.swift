import SynsightBase
/// The BPF programs that could have dropped a handshake segment (a tc,
/// tcx, XDP or cgroup skb program: `packet_dropped`, evidence `bpf_programs`), in
/// Swift terms. SynsightKernel reads them (BPFProgramReader); the drop area
/// of the attribution asks for them (Drops/DropPrograms.swift).

/// Where a program is attached, as the kernel runs it on a packet.
public enum BPFAttachKind: String, Sendable, Hashable, CaseIterable {
    /// A classic tc filter (cls_bpf) on a clsact or ingress qdisc.
    case tcIngress = "tc ingress"
    case tcEgress = "tc egress"
    /// A tcx link or program (6.6+; bpf_prog_query BPF_TCX_INGRESS/EGRESS).
    case tcxIngress = "tcx ingress"
    case tcxEgress = "tcx egress"
    /// BPF_CGROUP_INET_INGRESS / EGRESS on a cgroup v2 directory.
    case cgroupIngress = "cgroup inet ingress"
    case cgroupEgress = "cgroup inet egress"
    /// An XDP program, by its mode as iproute2 spells it (`ip link set dev X xdpgeneric off`).
    case xdpGeneric = "xdpgeneric"
    case xdpDriver = "xdpdrv"
    case xdpOffload = "xdpoffload"
    /// cgroup sock_addr and sock programs that can refuse bind() and connect()
    /// (EPERM, or what bpf_set_retval set): systemd's SocketBindDeny=, policy agents.
    case cgroupBind4 = "cgroup bind4"
    case cgroupBind6 = "cgroup bind6"
    case cgroupPostBind4 = "cgroup post_bind4"
    case cgroupPostBind6 = "cgroup post_bind6"
    case cgroupConnect4 = "cgroup connect4"
    case cgroupConnect6 = "cgroup connect6"

    public var isIngress: Bool { ![.tcEgress, .tcxEgress, .cgroupEgress].contains(self) }
    public var isCgroup: Bool { rawValue.hasPrefix("cgroup ") }

    /// The hooks that run in bind() and connect(), both families.
    public static let bindHooks: [BPFAttachKind] = [.cgroupBind4, .cgroupBind6, .cgroupPostBind4, .cgroupPostBind6]
    public static let connectHooks: [BPFAttachKind] = [.cgroupConnect4, .cgroupConnect6]

    /// bpftool's name of a cgroup attach type (`bpftool cgroup detach DIR bind4 id N`).
    public var bpftoolAttachType: String? {
        switch self {
        case .cgroupIngress: return "ingress"
        case .cgroupEgress: return "egress"
        default: return isCgroup ? String(rawValue.dropFirst("cgroup ".count)) : nil
        }
    }

    /// "tc ingress on eth0", "cgroup inet egress /system.slice/x.service".
    public func describe(at target: String) -> String {
        isCgroup ? "\(rawValue) \(target)" : "\(rawValue) on \(target)"
    }
}

/// One program found at an attach point. Names are untrusted (escaped on output).
public struct BPFProgramRef: Sendable, Hashable {
    /// The kernel's program id (`bpftool prog show id N`).
    public var id: UInt32
    /// The kernel's name for it (at most 15 characters; may be empty).
    public var name: String
    /// libbpf's name of its type (`sched_cls`, `cgroup_skb`).
    public var type: String
    /// The program's tag (hex of the kernel's 8-byte digest).
    public var tag: String
    public var kind: BPFAttachKind
    /// The interface name or the cgroup path (relative to the cgroup v2 root).
    public var target: String
    /// tc only: the filter's preference and its name as tc shows it (iproute2: `file.o:[section]`).
    public var tcPref: UInt16?
    public var tcName: String?
    /// cgroup only: the cgroup's directory (under the v2 mount), for the commands in the hint.
    public var cgroupDir: String?

    public init(id: UInt32, name: String, type: String, tag: String, kind: BPFAttachKind, target: String,
                tcPref: UInt16? = nil, tcName: String? = nil, cgroupDir: String? = nil) {
        self.id = id
        self.name = name
        self.type = type
        self.tag = tag
        self.kind = kind
        self.target = target
        self.tcPref = tcPref
        self.tcName = tcName
        self.cgroupDir = cgroupDir
    }

    public var attach: String { kind.describe(at: target) }
    /// The tool that owns it, when its names say so.
    public var owner: BPFProgramOwner? { BPFProgramOwner.of(names: [name, tcName ?? ""]) }
}

/// Tools whose BPF programs drop packets by policy, recognised by the names
/// they give their programs (the kernel's 15-character name, or the tc
/// filter's name). One entry per tool: the prefixes are spelled only here.
public enum BPFProgramOwner: String, Sendable, Hashable, CaseIterable {
    case cilium
    case calico
    case systemd

    /// Name prefixes of each tool's programs: Cilium's `cil_from_container`,
    /// `tail_handle_ipv4` (and its object files `bpf_lxc.o`, `bpf_host.o`);
    /// Calico's `calico_tc_main`, `cali_*`; systemd's IPAddressDeny/Allow
    /// and IPIngressFilterPath programs `sd_fw_ingress`, `sd_fw_egress`, its
    /// SocketBindAllow/Deny programs `sd_bind4`, `sd_bind6` and its
    /// RestrictNetworkInterfaces programs `sd_restrictif_e`, `sd_restrictif_i`.
    static let prefixes: [(BPFProgramOwner, [String])] = [
        (.cilium, ["cil_", "tail_", "bpf_lxc", "bpf_host", "bpf_overlay", "bpf_netdev"]),
        (.calico, ["calico_", "cali_"]),
        (.systemd, ["sd_fw_", "sd_bind", "sd_restrictif"]),
    ]

    public static func of(names: [String]) -> BPFProgramOwner? {
        for (owner, ps) in prefixes where names.contains(where: { n in ps.contains { n.hasPrefix($0) } }) {
            return owner
        }
        return nil
    }
}

/// What to look at for one drop: the interface's tc and tcx programs in its
/// namespace and/or the cgroup programs of a socket owner, one direction.
public struct BPFProgramQuery: Sendable, Hashable {
    public var netns: UInt32
    public var ifindex: UInt32
    public var ifname: String
    public var ingress: Bool
    /// Read the interface's tc (cls_bpf) filters and tcx programs.
    public var tc: Bool
    /// Read the cgroup programs of this process's cgroup v2 (the socket's owner).
    public var cgroupOf: UInt32?
    /// Read the interface's XDP programs (every mode).
    public var xdp: Bool
    /// The cgroup sock hooks to read (bind, connect) for `cgroupOf`, and the
    /// process's cgroup v2 id for when it has exited (a service that fails to
    /// bind often exits at once).
    public var cgroupHooks: [BPFAttachKind]
    public var cgroupID: UInt64

    public init(netns: UInt32, ifindex: UInt32, ifname: String, ingress: Bool, tc: Bool, cgroupOf: UInt32?,
                xdp: Bool = false, cgroupHooks: [BPFAttachKind] = [], cgroupID: UInt64 = 0) {
        self.cgroupHooks = cgroupHooks
        self.cgroupID = cgroupID
        self.netns = netns
        self.ifindex = ifindex
        self.ifname = ifname
        self.ingress = ingress
        self.tc = tc
        self.cgroupOf = cgroupOf
        self.xdp = xdp
    }
}

/// The programs found, and what could not be read (no privileges, the
/// namespace or the process gone), each as one sentence.
public struct BPFProgramFindings: Sendable, Hashable {
    public var programs: [BPFProgramRef]
    public var unavailable: [String]

    public init(programs: [BPFProgramRef] = [], unavailable: [String] = []) {
        self.programs = programs
        self.unavailable = unavailable
    }
}

/// Reads the programs at a drop's attach points (SynsightKernel implements
/// it; called on the pipeline thread, it may block briefly).
public protocol BPFProgramSource {
    func programs(_ query: BPFProgramQuery) -> BPFProgramFindings
}
