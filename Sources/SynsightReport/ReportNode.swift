import SynsightBase
import SynsightModel
/// The node a record came from (`node` {hostname, machine_id, boot_id}), as
/// `synsight report` groups and filters by it. The boot id is not part of a
/// node's identity here: a node that rebooted is the same node.
public struct ReportNode: Hashable, Sendable, Comparable {
    public var hostname: String?
    public var machineID: String?

    public init(hostname: String?, machineID: String?) {
        self.hostname = hostname
        self.machineID = machineID
    }

    /// Loose, like the rest of the report's reader: a `node` that is not an
    /// object or names nothing is no node.
    package static func decode(_ v: JSONValue?) -> ReportNode? {
        guard let v, case .object = v else { return nil }
        let n = ReportNode(hostname: v["hostname"]?.stringValue, machineID: v["machine_id"]?.stringValue)
        return n.hostname == nil && n.machineID == nil ? nil : n
    }

    /// The hostname, else the machine id (unescaped).
    public var label: String { hostname ?? machineID ?? "?" }

    /// Whether `--node name` selects it: its hostname or machine id.
    public func matches(_ name: String) -> Bool { hostname == name || machineID == name }

    public static func < (a: Self, b: Self) -> Bool {
        (a.hostname ?? "", a.machineID ?? "") < (b.hostname ?? "", b.machineID ?? "")
    }

    package var json: JSONValue {
        var f: [(String, JSONValue)] = []
        if let hostname { f.append(("hostname", .string(hostname))) }
        if let machineID { f.append(("machine_id", .string(machineID))) }
        return .object(f)
    }
}
