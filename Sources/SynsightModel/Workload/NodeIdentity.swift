import SynsightBase
/// The node a record comes from, so that recordings of many nodes can be
/// merged: read once at start-up (hostname, /etc/machine-id,
/// /proc/sys/kernel/random/boot_id). Every part optional.
public struct NodeIdentity: Sendable, Hashable {
    public var hostname: String?
    public var machineID: String?
    public var bootID: String?

    public init(hostname: String? = nil, machineID: String? = nil, bootID: String? = nil) {
        self.hostname = hostname
        self.machineID = machineID
        self.bootID = bootID
    }

    /// From the raw file contents (trailing newline and blanks removed;
    /// empty or implausibly long values are left out).
    public init(hostname: String?, machineIDFile: String?, bootIDFile: String?) {
        self.hostname = NodeIdentity.clean(hostname)
        self.machineID = NodeIdentity.clean(machineIDFile)
        self.bootID = NodeIdentity.clean(bootIDFile)
    }

    static func clean(_ s: String?) -> String? {
        guard let s else { return nil }
        let t = s.split(whereSeparator: { $0 == "\n" || $0 == " " || $0 == "\t" || $0 == "\r" }).first.map(String.init)
        guard let t, !t.isEmpty, t.utf8.count <= 255 else { return nil }
        return t
    }

    public var isEmpty: Bool { hostname == nil && machineID == nil && bootID == nil }

    /// `"node":{"hostname":…,"machine_id":…,"boot_id":…}` on every record.
    public var json: JSONValue {
        var f: [(String, JSONValue)] = []
        if let hostname { f.append(("hostname", .string(hostname))) }
        if let machineID { f.append(("machine_id", .string(machineID))) }
        if let bootID { f.append(("boot_id", .string(bootID))) }
        return .object(f)
    }
}
