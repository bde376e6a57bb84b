import SynsightAttribution
import SynsightBase
import SynsightModel
import SynsightNftables
import Testing

package let bootOffset: Int64 = 1_700_000_000_000_000_000

package let hostNS: UInt32 = 4_026_531_840

package let otherNS: UInt32 = 4_026_532_999

package func engine(joinWindowNs: UInt64 = 200_000_000, resolver: (any ProcessResolver)? = nil) -> AttributionEngine {
    AttributionEngine(clock: ClockMapping(bootToEpochOffsetNs: bootOffset), joinWindowNs: joinWindowNs, resolver: resolver)
}

package func v4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> IPAddress { IPAddress(v4: a, b, c, d) }

package func rst(at ts: UInt64, to local: Endpoint, from remote: Endpoint, netns: UInt32 = hostNS,
         hook: ResetHook = .tcpSendReset, isn: UInt32 = 0) -> KernelEvent {
    .noSocketReset(NoSocketReset(ts: ts, family: local.addr.isV4Mapped ? .ipv4 : .ipv6,
                                 local: local, remote: remote, netns: netns, hook: hook, isn: isn))
}

package func listenerChange(at ts: UInt64, on local: Endpoint, family: AddressFamily? = nil, pid: UInt32, comm: String,
                    inode: UInt64, netns: UInt32 = hostNS, ipv6Only: Bool = false) -> ListenerChange {
    ListenerChange(ts: ts, family: family ?? (local.addr.isV4Mapped ? .ipv4 : .ipv6), local: local,
                   task: TaskInfo(pid: pid, comm: comm), socketInode: inode, netns: netns, ipv6Only: ipv6Only)
}

package func exitEvent(at ts: UInt64, pid: UInt32, comm: String, code: UInt32) -> KernelEvent {
    .exit(ProcessExit(ts: ts, task: TaskInfo(pid: pid, comm: comm), exitCode: code))
}

package func connectFailure(at ts: UInt64, from local: Endpoint, to remote: Endpoint, pid: UInt32 = 777,
                    comm: String = "curl", errno: Int32 = 111, netns: UInt32 = hostNS, segmentsIn: UInt32? = nil) -> KernelEvent {
    var ce = ConnectError(ts: ts, connectTs: ts / 2, family: local.addr.isV4Mapped ? .ipv4 : .ipv6,
                          local: local, remote: remote, task: TaskInfo(pid: pid, comm: comm), netns: netns, errno: errno)
    ce.segmentsIn = segmentsIn
    return .connectError(ce)
}

extension Record {
    package func evidence(_ key: String) -> JSONValue? { evidence.first { $0.0 == key }?.1 }
}

/// Ingests `events` and then expires everything, returning all records.
package func run(_ e: inout AttributionEngine, _ events: [KernelEvent]) -> [Record] {
    var out: [Record] = []
    for ev in events { out += e.ingest(ev) }
    return out + e.finish()
}

/// Exactly one record, or a recorded issue.
package func single(_ records: [Record], sourceLocation: SourceLocation = #_sourceLocation) throws -> Record {
    try #require(records.count == 1, "expected exactly one record, got \(records.count)", sourceLocation: sourceLocation)
    return records[0]
}

package let client1 = Endpoint(addr: v4(127, 0, 0, 1), port: 40_000)
