import SynsightBase
import SynsightModel
/// The workload of a process as `synsight report` reads it back from a
/// record's process object (`unit`, `container`, `pod`; README "JSON
/// contract"): only what the report shows and filters on. Strings are
/// untrusted and escaped by each format.
public struct ReportWorkload: Hashable, Sendable {
    public struct Container: Hashable, Sendable {
        public var runtime: String?
        public var id: String?
        public var name: String?
        /// Its Compose or Swarm service (`container.service`): "compose", "shop/web".
        public var orchestrator: String?
        public var service: String?
    }

    public struct Pod: Hashable, Sendable {
        public var namespace: String?
        public var name: String?
        public var uid: String?
        public var container: String?
    }

    public var unit: String?
    public var container: Container?
    public var pod: Pod?

    /// Reads the identity fields of a process object; nil when it has none.
    /// Loose: a field of the wrong type is ignored, not an error (the line's
    /// other fields are still reported).
    package static func decode(_ p: JSONValue) -> ReportWorkload? {
        var w = ReportWorkload()
        w.unit = p["unit"]?.stringValue
        if let c = p["container"], case .object = c {
            var v = Container(runtime: c["runtime"]?.stringValue, id: c["id"]?.stringValue, name: c["name"]?.stringValue)
            if let service = c["service"], let name = service["name"]?.stringValue {
                v.orchestrator = service["orchestrator"]?.stringValue
                // Swarm's service name has the stack in it already (ComposeService.label).
                let project = v.orchestrator == "compose" ? service["project"]?.stringValue : nil
                v.service = project.map { "\($0)/\(name)" } ?? name
            }
            if v.id != nil || v.name != nil { w.container = v }
        }
        if let o = p["pod"], case .object = o {
            let v = Pod(namespace: o["namespace"]?.stringValue, name: o["name"]?.stringValue,
                        uid: o["uid"]?.stringValue, container: o["container"]?.stringValue)
            if v.name != nil || v.uid != nil { w.pod = v }
        }
        return w.unit == nil && w.container == nil && w.pod == nil ? nil : w
    }

    /// `namespace/name` of the pod, when both are known.
    public var podName: String? {
        guard let pod, let ns = pod.namespace, let n = pod.name else { return nil }
        return "\(ns)/\(n)"
    }

    /// The most specific name, in the operator's terms (unescaped):
    /// `pod shop/api container web`, `container web`, `unit nginx.service`.
    public var label: String {
        if let pod {
            var s = "pod " + (podName ?? pod.name ?? "uid " + String((pod.uid ?? "?").prefix(12)))
            if let c = pod.container { s += " container \(c)" }
            return s
        }
        if let container {
            let service = container.service.map { "\(container.orchestrator ?? "compose") service \($0) " } ?? ""
            return service + "container " + (container.name ?? String((container.id ?? "?").prefix(12)))
        }
        return "unit " + (unit ?? "?")
    }

    /// Whether `--workload w` selects it: the unit, the container's name or
    /// a prefix of its id, its Compose service as `project/service` (every
    /// replica), or the pod's `namespace/name`.
    public func matches(_ w: String) -> Bool {
        if unit == w || container?.name == w || container?.service == w || podName == w { return true }
        if let id = container?.id, id.hasPrefix(w) { return true }
        return false
    }

    /// The JSON report's fields for it: `workload` (the label), then the
    /// structured `unit`, `container`, `pod` as records carry them.
    package var jsonFields: [(String, JSONValue)] {
        func obj(_ pairs: [(String, String?)]) -> JSONValue {
            .object(pairs.compactMap { k, v in v.map { (k, JSONValue.string($0)) } })
        }
        var f: [(String, JSONValue)] = [("workload", .string(label))]
        if let unit { f.append(("unit", .string(unit))) }
        if let c = container {
            f.append(("container", obj([("runtime", c.runtime), ("id", c.id), ("name", c.name), ("service", c.service)])))
        }
        if let p = pod {
            f.append(("pod", obj([("namespace", p.namespace), ("name", p.name), ("uid", p.uid), ("container", p.container)])))
        }
        return f
    }
}
