import SynsightBase

/// The service a container was created for, in the operator's terms: a
/// Compose project's service (`docker compose`, docker-compose v1,
/// podman-compose) or a Swarm stack's service, read from the labels those
/// tools put on every container they create. Operators fix a Compose
/// container in its compose file and bring it up with `docker compose`, not
/// with `docker run`: the advice names the file and the command.
public struct ComposeService: Sendable, Hashable {
    public enum Orchestrator: String, Sendable, Hashable, CaseIterable {
        case compose
        case swarm
    }

    /// The labels read, one definition (Compose v1 and v2, podman-compose, Swarm).
    enum Label {
        static let project = "com.docker.compose.project"
        static let service = "com.docker.compose.service"
        static let configFiles = "com.docker.compose.project.config_files"
        static let workingDir = "com.docker.compose.project.working_dir"
        static let oneoff = "com.docker.compose.oneoff"
        static let podmanProject = "io.podman.compose.project"
        static let swarmService = "com.docker.swarm.service.name"
        static let stack = "com.docker.stack.namespace"
    }

    public var orchestrator: Orchestrator
    /// The Compose project, or the Swarm stack.
    public var project: String?
    /// The service name as its file spells it (Compose), or Swarm's service
    /// name (`<stack>_<service>`).
    public var name: String
    /// The compose files, absolute (docker-compose v1 records them relative
    /// to `workingDir`).
    public var configFiles: [String]
    public var workingDir: String?
    /// A one-off container (`docker compose run`), not one of the service's replicas.
    public var oneoff: Bool

    public init(orchestrator: Orchestrator, project: String?, name: String, configFiles: [String] = [],
                workingDir: String? = nil, oneoff: Bool = false) {
        self.orchestrator = orchestrator
        self.project = project
        self.name = name
        self.configFiles = configFiles
        self.workingDir = workingDir
        self.oneoff = oneoff
    }

    /// The service a container's labels name; nil when no tool's labels are there.
    public init?(labels: [String: String]) {
        func value(_ key: String) -> String? { labels[key].flatMap { $0.isEmpty ? nil : $0 } }
        if let service = value(Label.service) {
            let dir = value(Label.workingDir)
            let files = (value(Label.configFiles) ?? "").split(separator: ",").map { f -> String in
                let path = f.trimmingCharacters(in: " ")
                guard !path.hasPrefix("/"), let dir else { return path }
                return dir.hasSuffix("/") ? dir + path : dir + "/" + path
            }.filter { !$0.isEmpty }
            self.init(orchestrator: .compose, project: value(Label.project) ?? value(Label.podmanProject), name: service,
                      configFiles: files, workingDir: dir, oneoff: labels[Label.oneoff]?.lowercased() == "true")
        } else if let service = value(Label.swarmService) {
            self.init(orchestrator: .swarm, project: value(Label.stack), name: service)
        } else {
            return nil
        }
    }

    /// The service a parsed Docker `config.v2.json` names (its `Config.Labels`).
    public init?(dockerConfig config: JSONValue) { self.init(labels: Self.labels(config["Config"]?["Labels"])) }

    /// The service a libpod container configuration names (its `labels`:
    /// podman-compose labels its containers as Compose does).
    public init?(podmanConfig config: JSONValue) { self.init(labels: Self.labels(config["labels"])) }

    /// A labels object: string values only.
    static func labels(_ object: JSONValue?) -> [String: String] {
        guard case .object(let fields)? = object else { return [:] }
        var out: [String: String] = [:]
        for (k, v) in fields { if let s = v.stringValue { out[k] = s } }
        return out
    }

    /// "shop/web" (Compose), "shop_web" (Swarm: its service name has the stack in it already).
    public var label: String {
        guard orchestrator == .compose, let project else { return name }
        return "\(project)/\(name)"
    }

    /// "compose service shop/web", "swarm service shop_web": how a hint names it.
    public var phrase: String { "\(orchestrator.rawValue) service \(label)" }

    /// The command that re-creates the service's containers from its file
    /// (picking up an edit of it), as the runtime's Compose spells it:
    /// `docker compose -p shop -f /srv/shop/compose.yaml up -d web`.
    /// Swarm: `docker service update --force shop_web`.
    public func upCommand(runtime: ContainerRuntime) -> String {
        guard orchestrator == .compose else { return "docker service update --force \(ShellWord.quoted(name))" }
        var words = [runtime == .podman ? "podman-compose" : "docker compose"]
        if let project { words.append("-p \(ShellWord.quoted(project))") }
        words += configFiles.map { "-f \(ShellWord.quoted($0))" }
        words += ["up -d", ShellWord.quoted(name)]
        return words.joined(separator: " ")
    }

    /// Where the service is defined: "service web in /srv/shop/compose.yaml".
    public var definedIn: String {
        guard orchestrator == .compose else { return "service \(name) (docker service inspect \(ShellWord.quoted(name)))" }
        let files = configFiles.isEmpty ? "project \(project ?? "?")'s compose file" : configFiles.joined(separator: " + ")
        return "service \(name) in \(files)"
    }

    package var json: JSONValue {
        var f: [(String, JSONValue)] = [("orchestrator", .string(orchestrator.rawValue))]
        if let project { f.append(("project", .string(project))) }
        f.append(("name", .string(name)))
        if !configFiles.isEmpty { f.append(("config_files", .array(configFiles.map { .string($0) }))) }
        if let workingDir { f.append(("working_dir", .string(workingDir))) }
        if oneoff { f.append(("oneoff", .bool(true))) }
        return .object(f)
    }
}
