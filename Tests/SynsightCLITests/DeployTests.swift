import Foundation
import Testing

/// The shipped systemd unit must be valid as systemd itself reads it: no
/// unknown keys, no bad values, and an ExecStart that runs our binary with
/// options `record` accepts.
@Suite("deploy files")
struct DeployTests {
    static let unit = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../deploy/systemd/synsight.service").standardizedFileURL

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze")))
    func systemdUnitVerifies() throws {
        let text = try String(contentsOf: Self.unit, encoding: .utf8)
        let exe = try synsightExecutable().path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let local = dir.appendingPathComponent("synsight.service")
        try text.replacingOccurrences(of: "/usr/local/bin/synsight", with: exe).write(to: local, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-analyze")
        p.arguments = ["verify", local.path]
        let pipe = Pipe()
        p.standardError = pipe
        p.standardOutput = pipe
        try p.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(output)")
        // verify exits 0 on unknown keys but says so: any output is a defect.
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(output)")
        #expect(text.contains("NoNewPrivileges=yes") && text.contains("ProtectSystem=strict"))
    }

    @Test func execStartOptionsAreAcceptedByRecord() throws {
        let text = try String(contentsOf: Self.unit, encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        let args = line.dropFirst("ExecStart=".count).split(separator: " ").dropFirst().map(String.init)
        #expect(args.first == "record")
        // Parse-only: --help after the options validates nothing, so check the
        // options by asking record to validate them with an impossible --duration.
        let r = try run(Array(args) + ["--duration", "-1"])
        #expect(r.status != 0)
        #expect(!r.stderr.contains("Unknown option"), "\(r.stderr)")
        #expect(r.stderr.contains("--duration"), "\(r.stderr)")
    }

    // MARK: Kubernetes

    static let manifest = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../deploy/kubernetes/synsight-daemonset.yaml").standardizedFileURL
    static let dockerfile = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../deploy/kubernetes/Dockerfile").standardizedFileURL

    /// The manifest against Kubernetes' own OpenAPI schemas, strictly (unknown
    /// fields are errors), for 1.30 (appArmorProfile's first release) and the
    /// validator's newest. A missing validator is a failure, not a skip.
    @Test(arguments: ["1.30.0", nil as String?])
    func daemonSetValidatesAgainstKubernetesSchemas(_ version: String?) throws {
        let py = try ReportFixture.venvPython()
        let validator = (py as NSString).deletingLastPathComponent + "/kubernetes-validate"
        try #require(FileManager.default.isExecutableFile(atPath: validator),
                     "\(validator) is missing: run scripts/install-deps.sh")
        var args = ["--strict"]
        if let version { args += ["--kubernetes-version", version] }
        let r = try runTool(validator, args + [Self.manifest.path])
        #expect(r.status == 0, "\(r.out)")
        #expect(r.out.contains("passed for resource daemonset/synsight"), "\(r.out)")
        #expect(r.out.contains("passed for resource namespace/synsight"), "\(r.out)")
        #expect(!r.out.contains("ERROR"), "\(r.out)")
    }

    /// The validator is not a rubber stamp: the same manifest with a
    /// misspelt field fails.
    @Test func theValidatorRejectsAnUnknownField() throws {
        let py = try ReportFixture.venvPython()
        let validator = (py as NSString).deletingLastPathComponent + "/kubernetes-validate"
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("synsight-bad-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: bad) }
        let text = try String(contentsOf: Self.manifest, encoding: .utf8)
            .replacingOccurrences(of: "hostPID: true", with: "hostPid: true")
        try text.write(to: bad, atomically: true, encoding: .utf8)
        let r = try runTool(validator, ["--strict", bad.path])
        #expect(r.status != 0)
        #expect(r.out.contains("hostPid"), "\(r.out)")
    }

    /// What the schema cannot say: the pod has what synsight needs and no more.
    @Test func daemonSetGrantsWhatRecordNeeds() throws {
        let py = try ReportFixture.venvPython()
        let r = try runTool(py, ["-c", """
            import json, sys, yaml
            docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
            ds = next(d for d in docs if d["kind"] == "DaemonSet")
            print(json.dumps(ds["spec"]["template"]["spec"]))
            """, Self.manifest.path])
        try #require(r.status == 0, "\(r.out)")
        let spec = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        #expect(spec["hostNetwork"] as? Bool == true)
        #expect(spec["hostPID"] as? Bool == true)
        let tolerations = spec["tolerations"] as? [[String: Any]] ?? []
        #expect(tolerations.contains { $0["operator"] as? String == "Exists" && $0["key"] == nil }, "must tolerate every taint")
        let c = try #require((spec["containers"] as? [[String: Any]])?.first)
        let sc = c["securityContext"] as? [String: Any] ?? [:]
        #expect(sc["readOnlyRootFilesystem"] as? Bool == true)
        #expect(sc["privileged"] == nil || sc["privileged"] as? Bool == false)
        let caps = sc["capabilities"] as? [String: Any] ?? [:]
        #expect(caps["drop"] as? [String] == ["ALL"])
        #expect(Set(caps["add"] as? [String] ?? []) == ["BPF", "PERFMON", "SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH", "NET_ADMIN", "SYS_RESOURCE"])
        // The same capabilities as the systemd unit.
        let unit = try String(contentsOf: Self.unit, encoding: .utf8)
        let bounding = unit.split(separator: "\n").first { $0.hasPrefix("CapabilityBoundingSet=") } ?? ""
        #expect(Set(bounding.dropFirst("CapabilityBoundingSet=".count).split(separator: " ").map { String($0.dropFirst(4)) })
                == Set(caps["add"] as? [String] ?? []))
        // Requests and limits, as Kubernetes quantities (the schema accepts any string).
        let res = c["resources"] as? [String: [String: Any]] ?? [:]
        for kind in ["requests", "limits"] {
            for key in ["cpu", "memory"] {
                let q = "\(res[kind]?[key] ?? "")"
                #expect(q.range(of: #"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi)?$"#, options: .regularExpression) != nil, "\(kind).\(key) = \(q)")
            }
        }
        // Mounts: recordings writable on the host, BTF read-only.
        let mounts = c["volumeMounts"] as? [[String: Any]] ?? []
        let volumes = spec["volumes"] as? [[String: Any]] ?? []
        func hostPath(_ mountPath: String) -> (path: String?, readOnly: Bool) {
            let m = mounts.first { $0["mountPath"] as? String == mountPath }
            let v = volumes.first { $0["name"] as? String == m?["name"] as? String }
            return ((v?["hostPath"] as? [String: Any])?["path"] as? String, m?["readOnly"] as? Bool ?? false)
        }
        #expect(hostPath("/var/log/synsight").path == "/var/log/synsight")
        #expect(hostPath("/var/log/synsight").readOnly == false)
        #expect(hostPath("/sys/kernel/btf").path == "/sys/kernel/btf")
        #expect(hostPath("/sys/kernel/btf").readOnly == true)
        // Workload identity sources, read-only at the paths synsight reads.
        for path in ["/var/log/pods", "/var/log/containers", "/etc/machine-id"] {
            #expect(hostPath(path).path == path)
            #expect(hostPath(path).readOnly == true)
        }
        // The liveness probe asks the metrics endpoint the args turn on.
        let args = c["args"] as? [String] ?? []
        let probe = (c["livenessProbe"] as? [String: Any])?["httpGet"] as? [String: Any]
        #expect(probe?["path"] as? String == "/metrics")
        if let i = args.firstIndex(of: "--metrics-address"), i + 1 < args.count {
            #expect("\(probe?["port"] ?? "")" == args[i + 1])
        } else {
            Issue.record("args have no --metrics-address for the liveness probe: \(args)")
        }
        // `record` accepts the args (validation only: an impossible --duration stops it there).
        let command = c["command"] as? [String] ?? []
        #expect(command == ["/usr/local/bin/synsight"])
        let accepted = try run(args + ["--duration", "-1"])
        #expect(accepted.status != 0)
        #expect(!accepted.stderr.contains("Unknown option"), "\(accepted.stderr)")
        #expect(accepted.stderr.contains("--duration"), "\(accepted.stderr)")
        // The image puts the binary where the manifest runs it.
        let dockerfile = try String(contentsOf: Self.dockerfile, encoding: .utf8)
        #expect(dockerfile.contains("/usr/local/bin/synsight"))
        #expect(dockerfile.contains("swift build -c release --product synsight"))
    }
}
