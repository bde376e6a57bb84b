import CLibBPF
import CSynsightABI
import Synchronization

/// The kernel's `--port` filter (bpf/config.bpf.h, section `.data.ports`):
/// written once the programs are loaded, before any is attached, and grown
/// while tracing when a container starts to publish a named port
/// (PublishedPortFollower adds its container port). Ports are only added,
/// never removed, so a BPF program reading the filter mid-update sees the
/// old ports or the new ones, never fewer. Past `TracerOptions.maxPorts`
/// ports the kernel passes every port (`nports` 0) and user space filters
/// alone: nothing is lost, more crosses the ring buffer.
///
/// Sendable: the ports are behind a mutex; the map is written with one
/// syscall per change (from the pipeline thread, never the ring-buffer one).
public final class PortFilter: Sendable {
    let fd: Int32
    private let held = Mutex<[UInt16]>([])

    init(fd: Int32) {
        self.fd = fd
    }

    /// Said once when the filter outgrows the kernel's.
    public static let fullNote = "synsight: more than \(TracerOptions.maxPorts) ports to filter (named and followed "
        + "into containers): the kernel now passes every port and synsight filters the records itself"

    /// The ports the kernel filters for; nil when it passes every port.
    public var kernelPorts: [UInt16]? {
        let ports = held.withLock { $0 }
        return ports.count > TracerOptions.maxPorts ? nil : ports
    }

    /// Adds `ports` (those not held yet) and writes the filter. Returns the
    /// ports added; throws when the map cannot be written.
    @discardableResult
    public func add(_ ports: [UInt16]) throws(KernelError) -> [UInt16] {
        // Written under the lock: two writers never put an older, smaller set last.
        let (added, rc) = held.withLock { held -> ([UInt16], Int32) in
            var added: [UInt16] = []
            for p in ports where !held.contains(p) && !added.contains(p) { added.append(p) }
            if added.isEmpty { return ([], 0) }
            let rc = Self.write(held + added, fd: fd)
            if rc == 0 { held += added }
            return (added, rc)
        }
        if rc != 0 { throw KernelError.sys("writing the --port filter", code: rc) }
        return added
    }

    private static func write(_ ports: [UInt16], fd: Int32) -> Int32 {
        var value = syn_port_filter()
        if ports.count <= TracerOptions.maxPorts {
            withUnsafeMutableBytes(of: &value.ports) { raw in
                let slots = raw.bindMemory(to: UInt16.self)
                for (i, p) in ports.enumerated() { slots[i] = p }
            }
            value.nports = UInt32(ports.count)
        }
        var key: UInt32 = 0
        return bpf_map_update_elem(fd, &key, &value, 0)
    }
}
