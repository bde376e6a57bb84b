import SynsightBase
import SynsightModel
import CSynsightABI
import Testing

/// The raw bytes of a value, as the ring buffer would deliver them.
package func rawBytes<T>(of value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
}

/// Copies `bytes` into the start of a fixed-size C array field.
package func fill<T>(_ field: inout T, with bytes: [UInt8]) {
    withUnsafeMutableBytes(of: &field) { buf in
        precondition(bytes.count <= buf.count, "fixture does not fit the field")
        buf.copyBytes(from: bytes)
    }
}

/// 16-byte IPv4-mapped form of a.b.c.d, as the ABI carries IPv4.
package func mapped(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> [UInt8] {
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, a, b, c, d]
}

/// 16 bytes from eight 16-bit groups.
package func v6(_ groups: UInt16...) -> [UInt8] {
    precondition(groups.count == 8)
    return groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
}

package func header(_ kind: syn_event_kind, size: Int, ts: UInt64, cpu: UInt32 = 1, abi: UInt8 = EventDecoder.abiVersion) -> syn_hdr {
    var h = syn_hdr()
    h.kind = UInt8(kind.rawValue)
    h.abi = abi
    h.size = UInt16(size)
    h.cpu = cpu
    h.ts_ns = ts
    return h
}

package func tuple(local: [UInt8], lport: UInt16, remote: [UInt8], rport: UInt16, family: UInt16) -> syn_tuple {
    var t = syn_tuple()
    fill(&t.local, with: local)
    fill(&t.remote, with: remote)
    t.lport = lport
    t.rport = rport
    t.family = family
    return t
}

package func task(pid: UInt32, tid: UInt32, uid: UInt32, cgroup: UInt64, comm: [UInt8]) -> syn_task {
    var t = syn_task()
    t.pid = pid
    t.tid = tid
    t.uid = uid
    t.cgroup_id = cgroup
    fill(&t.comm, with: comm)
    return t
}

package func rstRecord(local: [UInt8] = mapped(10, 0, 0, 1), lport: UInt16 = 8080,
               remote: [UInt8] = mapped(10, 0, 0, 2), rport: UInt16 = 54321,
               family: UInt16 = 2, netns: UInt32 = 4_026_531_840, source: UInt8 = 2,
               flags: UInt8 = 0x02, ts: UInt64 = 123_456_789_000, abi: UInt8 = EventDecoder.abiVersion,
               isn: UInt32 = 0, inDev: syn_dev = syn_dev(), inVRF: syn_dev = syn_dev()) -> [UInt8] {
    var e = syn_ev_no_socket_rst()
    e.in_dev = inDev
    e.in_vrf = inVRF
    e.hdr = header(SYN_EV_NO_SOCKET_RST, size: MemoryLayout<syn_ev_no_socket_rst>.size, ts: ts, cpu: 3, abi: abi)
    e.t = tuple(local: local, lport: lport, remote: remote, rport: rport, family: family)
    e.netns = netns
    e.source = source
    e.tcp_flags = flags
    e.isn = isn
    return rawBytes(of: e)
}

package func listenRecord(kind: syn_event_kind = SYN_EV_LISTEN, local: [UInt8] = v6(0, 0, 0, 0, 0, 0, 0, 0),
                  lport: UInt16 = 443, family: UInt16 = 10, comm: [UInt8] = Array("nginx".utf8),
                  ipv6only: UInt8 = 1, ts: UInt64 = 5_000, bound: syn_dev = syn_dev()) -> [UInt8] {
    var e = syn_ev_listen()
    e.bound = bound
    e.hdr = header(kind, size: MemoryLayout<syn_ev_listen>.size, ts: ts)
    e.t = tuple(local: local, lport: lport, remote: [UInt8](repeating: 0, count: 16), rport: 0, family: family)
    e.task = task(pid: 4242, tid: 4243, uid: 1000, cgroup: 77, comm: comm)
    e.sock_ino = 987_654
    e.netns = 4_026_532_000
    e.ipv6only = ipv6only
    return rawBytes(of: e)
}

package func exitRecord(exitCode: UInt32, comm: [UInt8] = Array("redis-server".utf8)) -> [UInt8] {
    var e = syn_ev_exit()
    e.hdr = header(SYN_EV_EXIT, size: MemoryLayout<syn_ev_exit>.size, ts: 9_000_000_000)
    e.task = task(pid: 31337, tid: 31337, uid: 0, cgroup: 5, comm: comm)
    e.exit_code = exitCode
    return rawBytes(of: e)
}

package func connectErrorRecord(err: Int32 = 111, family: UInt16 = 2,
                        local: [UInt8] = mapped(127, 0, 0, 1), remote: [UInt8] = mapped(127, 0, 0, 1),
                        seen: Bool = true) -> [UInt8] {
    var e = syn_ev_connect_error()
    e.hdr = header(SYN_EV_CONNECT_ERROR, size: MemoryLayout<syn_ev_connect_error>.size, ts: 2_000_500)
    e.t = tuple(local: local, lport: 40_000, remote: remote, rport: 9, family: family)
    // Not seen: the kernel side had no entry of its connect() (all zero).
    if seen {
        e.task = task(pid: 777, tid: 778, uid: 1001, cgroup: 9, comm: Array("curl".utf8))
        e.connect_ts_ns = 2_000_000
    }
    e.netns = 4_026_531_840
    e.err = err
    return rawBytes(of: e)
}

/// An IPv6 address from eight 16-bit groups.
package func ip6(_ groups: UInt16...) -> IPAddress {
    precondition(groups.count == 8)
    return IPAddress(bytes: groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] })
}
