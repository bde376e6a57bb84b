import SynsightBase
import SynsightModel
import SynsightRecording
import Foundation
import Testing

@discardableResult
package func shell(_ command: String) -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try? p.run()
    p.waitUntilExit()
    return p.terminationStatus
}

package func writeFile(_ path: String, _ bytes: [UInt8]) {
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

package func readBytes(_ path: String) -> [UInt8] {
    Array((try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data())
}

/// Compresses `path` to `path.gz` with synsight's deflate (the file is kept).
package func gzipWithSynsight(_ path: String) -> Gzip.WriteEnd {
    let i = open(path, O_RDONLY), o = open(path + ".gz", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    defer { close(i); close(o) }
    return Gzip.deflate(from: i, to: o)
}

package func inflateAll(_ path: String) -> ([UInt8], Gzip.ReadEnd) {
    let fd = open(path, O_RDONLY)
    defer { close(fd) }
    var out: [UInt8] = []
    let end = Gzip.inflate(fd: fd) { out.append(contentsOf: $0) }
    return (out, end)
}

package func tempDir() -> String {
    var template = Array((NSTemporaryDirectory() + "synsight-rec-XXXXXX").utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
}

package func sampleRecord(_ i: Int, port: UInt16 = 8080, pid: UInt32 = 7) -> Record {
    Record(ts: 1_700_000_000_000_000_000 + Int64(i), kind: .refusal, reason: .noListener, cause: .noListener(.neverListened),
           port: port, family: .ipv4, netns: 1, local: Endpoint(addr: IPAddress(v4: 127, 0, 0, 1), port: port),
           remote: Endpoint(addr: IPAddress(v4: 127, 0, 0, 1), port: UInt16(40_000 + i % 1000)),
           process: ProcessRef(pid: pid, comm: "svc"), hint: "start the service")
}

package func lines(_ path: String) -> [String] {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
}
