import CSynsightABI
import SynsightBase

/// Why a ring-buffer record could not be decoded. Each names what was wrong
/// so the consumer can count and report it instead of crashing.
public enum DecodeError: Error, Equatable, CustomStringConvertible {
    case empty
    case truncated(kind: UInt8, got: Int, need: Int)
    case unknownKind(UInt8)
    case abiMismatch(got: UInt8, expected: UInt8)
    case badFamily(UInt16)
    case unknownHook(UInt8)
    case unknownCall(UInt8)

    public var description: String {
        switch self {
        case .empty: return "empty record"
        case let .truncated(kind, got, need): return "record of kind \(kind) truncated: \(got) bytes, need \(need)"
        case .unknownKind(let k): return "unknown record kind \(k)"
        case let .abiMismatch(got, expected): return "record ABI version \(got), this build understands \(expected)"
        case .badFamily(let f): return "unknown address family \(f)"
        case .unknownHook(let h): return "unknown reset hook \(h)"
        case .unknownCall(let c): return "unknown socket call \(c)"
        }
    }
}

/// Decodes the records of bpf/synsight_abi.h from raw ring-buffer bytes. The
/// layouts come from the C header itself (imported as Swift structs), so
/// there is no second, hand-kept copy of them here.
public enum EventDecoder {
    public static let abiVersion = UInt8(SYN_ABI_VERSION)

    public static func decode(_ raw: UnsafeRawBufferPointer) throws(DecodeError) -> KernelEvent {
        guard raw.count >= 1 else { throw .empty }
        let kind = raw[0]
        let need: Int
        switch UInt32(kind) {
        case SYN_EV_NO_SOCKET_RST.rawValue: need = MemoryLayout<syn_ev_no_socket_rst>.size
        case SYN_EV_LISTEN.rawValue, SYN_EV_LISTEN_CLOSE.rawValue: need = MemoryLayout<syn_ev_listen>.size
        case SYN_EV_EXIT.rawValue: need = MemoryLayout<syn_ev_exit>.size
        case SYN_EV_CONNECT_ERROR.rawValue: need = MemoryLayout<syn_ev_connect_error>.size
        case SYN_EV_SOCKCALL.rawValue: need = MemoryLayout<syn_ev_sockcall>.size
        case SYN_EV_FW_DROP.rawValue: need = MemoryLayout<syn_ev_fw_drop>.size
        case SYN_EV_FW_ICMP.rawValue: need = MemoryLayout<syn_ev_fw_icmp>.size
        case SYN_EV_FW_SYN_RETRANS.rawValue: need = MemoryLayout<syn_ev_fw_syn_retrans>.size
        case SYN_EV_FW_SOFT_ERROR.rawValue: need = MemoryLayout<syn_ev_connect_error>.size
        case SYN_EV_PKT_DROP.rawValue: need = MemoryLayout<syn_ev_pkt_drop>.size
        case SYN_EV_CONNECT_TIMEOUT.rawValue: need = MemoryLayout<syn_ev_connect_timeout>.size
        case SYN_EV_CONNECT_RESET.rawValue: need = MemoryLayout<syn_ev_connect_reset>.size
        case SYN_EV_CONNECT_ABANDONED.rawValue: need = MemoryLayout<syn_ev_connect_abandoned>.size
        default:
            guard let size = overflowSizes[UInt32(kind)] else { throw .unknownKind(kind) }
            need = size
        }
        // Records may grow at the end in later ABI revisions; a shorter one is an error.
        guard raw.count >= need else { throw .truncated(kind: kind, got: raw.count, need: need) }
        let abi = raw[1]
        guard abi == abiVersion else { throw .abiMismatch(got: abi, expected: abiVersion) }
        if overflowSizes[UInt32(kind)] != nil { return try decodeOverflow(kind: UInt32(kind), raw) }

        switch UInt32(kind) {
        case SYN_EV_NO_SOCKET_RST.rawValue:
            let e = raw.loadUnaligned(as: syn_ev_no_socket_rst.self)
            let t = try tuple(e.t)
            guard let hook = ResetHook(rawValue: e.source) else { throw .unknownHook(e.source) }
            var original: Endpoint?
            if e.has_ct != 0 {
                let o = Endpoint(addr: IPAddress(bytes: withUnsafeBytes(of: e.orig_dst) { Array($0) }), port: e.orig_dport)
                if o != t.local { original = o }
            }
            return .noSocketReset(NoSocketReset(
                ts: e.hdr.ts_ns, family: t.family, local: t.local, remote: t.remote,
                netns: e.netns, hook: hook,
                tcpFlags: e.tcp_flags, originalDestination: original, isn: e.isn,
                inDevice: NetDevice(e.in_dev), inVRF: NetDevice(e.in_vrf)))
        case SYN_EV_LISTEN.rawValue, SYN_EV_LISTEN_CLOSE.rawValue:
            let e = raw.loadUnaligned(as: syn_ev_listen.self)
            let t = try tuple(e.t)
            let change = ListenerChange(
                ts: e.hdr.ts_ns, family: t.family, local: t.local, task: task(e.task),
                socketInode: e.sock_ino, netns: e.netns, ipv6Only: e.ipv6only != 0,
                boundDevice: NetDevice(e.bound))
            return UInt32(kind) == SYN_EV_LISTEN.rawValue ? .listen(change) : .listenClose(change)
        case SYN_EV_EXIT.rawValue:
            let e = raw.loadUnaligned(as: syn_ev_exit.self)
            return .exit(ProcessExit(ts: e.hdr.ts_ns, task: task(e.task), exitCode: e.exit_code))
        case SYN_EV_SOCKCALL.rawValue:
            return try SocketCallDecoder.decode(raw)
        case SYN_EV_FW_DROP.rawValue, SYN_EV_FW_ICMP.rawValue, SYN_EV_FW_SYN_RETRANS.rawValue, SYN_EV_FW_SOFT_ERROR.rawValue:
            return try decodeFirewall(kind: kind, raw)
        case SYN_EV_PKT_DROP.rawValue:
            return try decodePacketDrop(raw)
        case SYN_EV_CONNECT_TIMEOUT.rawValue:
            return try decodeConnectTimeout(raw)
        case SYN_EV_CONNECT_RESET.rawValue:
            return try decodeConnectReset(raw)
        case SYN_EV_CONNECT_ABANDONED.rawValue:
            return try decodeConnectAbandoned(raw)
        default:
            return .connectError(try connectError(raw.loadUnaligned(as: syn_ev_connect_error.self)))
        }
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> KernelEvent {
        do {
            return try bytes.withUnsafeBytes { raw in try decode(raw) }
        } catch let e as DecodeError {
            throw e
        } catch {
            fatalError("unreachable: \(error)")
        }
    }

    /// SYN_EV_CONNECT_ERROR and SYN_EV_FW_SOFT_ERROR share this layout.
    package static func connectError(_ e: syn_ev_connect_error) throws(DecodeError) -> ConnectError {
        var ce = connectError(ts: e.hdr.ts_ns, tuple: try tuple(e.t), caller: e.task, connectTs: e.connect_ts_ns, netns: e.netns,
                              errno: e.err)
        ce.segmentsIn = e.segs_in
        return ce
    }

    /// A connect()'s outcome with its caller as the connecting-socket table
    /// kept it: pid 0 means the kernel side had no entry of its connect() (no task, no time).
    static func connectError(ts: UInt64, tuple t: (family: AddressFamily, local: Endpoint, remote: Endpoint), caller: syn_task,
                             connectTs: UInt64, netns: UInt32, errno: Int32) -> ConnectError {
        let seen = caller.pid != 0
        return ConnectError(ts: ts, connectTs: seen ? connectTs : nil, family: t.family, local: t.local, remote: t.remote,
                            task: seen ? task(caller) : nil, netns: netns, errno: errno)
    }

    static func tuple(_ t: syn_tuple) throws(DecodeError) -> (family: AddressFamily, local: Endpoint, remote: Endpoint) {
        guard let family = AddressFamily(kernel: t.family) else { throw .badFamily(t.family) }
        return (family,
                Endpoint(addr: address(t.local), port: t.lport),
                Endpoint(addr: address(t.remote), port: t.rport))
    }

    package static func address(_ a: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                              UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) -> IPAddress {
        withUnsafeBytes(of: a) { IPAddress(bytes: Array($0)) }
    }

    package static func task(_ t: syn_task) -> TaskInfo {
        let comm = NameBytes.string(cField: t.comm)
        return TaskInfo(pid: t.pid, tid: t.tid, uid: t.uid, cgroupID: t.cgroup_id, comm: comm)
    }
}
