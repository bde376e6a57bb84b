import Foundation
import Testing
@testable import SynsightKernel
@testable import SynsightModel

/// Podman's state databases read from a store directory: Podman 5's SQLite
/// `db.sql`, written here by Python's sqlite3 with libpod's schema for the two
/// tables read (libpod/sqlite_state_internal.go), and read through
/// libsqlite3 as synsight reads it; and Podman 4's BoltDB with the store's
/// containers.json. The end-to-end Podman test reads a real Podman 4 store.
@Suite("Podman's state databases")
struct PodmanPortReaderTests {
    let root = NSTemporaryDirectory() + "synsight-podman-\(UInt32.random(in: 0...UInt32.max))"
    static let id = String(repeating: "ef", count: 32)

    static let config = #"{"spec":{"ociVersion":"1.1.0"},"id":"\#(id)","name":"api","#
        + #""newPortMappings":[{"host_ip":"","container_port":8080,"host_port":18443,"range":1,"protocol":"tcp"}]}"#
    static let state = #"{"state":6,"exitCode":1,"finishedTime":"2026-12-06T13:14:15.5Z","oomKilled":true}"#

    func sqlite(_ statements: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()",
                       root + "/db.sql", statements]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }

    @Test("Podman 5: db.sql's ContainerConfig and ContainerState JSON through libsqlite3; read again when it changed")
    func sqliteStore() throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try sqlite("""
            CREATE TABLE ContainerConfig(ID TEXT PRIMARY KEY NOT NULL, Name TEXT UNIQUE NOT NULL, PodID TEXT, JSON TEXT NOT NULL);
            CREATE TABLE ContainerState(ID TEXT PRIMARY KEY NOT NULL, State INTEGER NOT NULL, ExitCode INTEGER, JSON TEXT NOT NULL);
            INSERT INTO ContainerConfig VALUES ('\(Self.id)', 'api', NULL, '\(Self.config)');
            INSERT INTO ContainerState VALUES ('\(Self.id)', 6, 1, '\(Self.state)');
            """)
        let reader = PodmanPortReader(roots: [root])
        let b = reader.bindings()
        #expect(b.count == 1, "\(b)")
        let first = try #require(b.first)
        #expect(first.runtime == .podman && first.id == Self.id && first.name == "api" && first.published == "0.0.0.0:18443")
        #expect(first.containerPort == 8080 && first.exitCode == 1 && first.oomKilled && first.finishedAt == "2026-12-06T13:14:15.5Z")
        // A container removed: its rows are gone (the file changed, so it is read again).
        Thread.sleep(forTimeInterval: 0.01)
        try sqlite("DELETE FROM ContainerConfig; DELETE FROM ContainerState;")
        #expect(reader.bindings().isEmpty)
        // Not libpod's schema: nothing, no crash.
        try sqlite("DROP TABLE ContainerState;")
        #expect(PodmanPortReader.sqliteRows(root + "/db.sql") == nil)
    }

    @Test("Podman 4: the BoltDB values with the store's containers.json")
    func boltStore() throws {
        try FileManager.default.createDirectory(atPath: root + "/libpod", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/overlay-containers", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let stateWithPath = Self.state.replacingOccurrences(
            of: #"{"state":6,"#, with: #"{"state":6,"configPath":"/s/overlay-containers/\#(Self.id)/userdata/config.json","#)
        try Data(([0, 1, 2] + Array(Self.config.utf8) + [0, 7] + Array(stateWithPath.utf8) + [9])).write(to: URL(fileURLWithPath: root + "/libpod/bolt_state.db"))
        try #"[{"id":"\#(Self.id)","names":["api"]}]"#.write(toFile: root + "/overlay-containers/containers.json", atomically: true, encoding: .utf8)
        let b = PodmanPortReader(roots: [root]).bindings()
        #expect(b.map(\.published) == ["0.0.0.0:18443"] && b.first?.exitCode == 1, "\(b)")
    }
}
