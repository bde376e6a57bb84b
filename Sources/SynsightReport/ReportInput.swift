import Glibc
import SynsightBase
import SynsightModel

/// Reads report inputs (files and directories) line by line into a
/// `ReportBuilder`, with a fixed-size read buffer, collecting per-line
/// diagnostics (capped) and the exit status.
public struct ReportSession {
    public static let maxMessages = 20
    public static let maxLineBytes = 1 << 20

    public var builder: ReportBuilder
    /// Diagnostics as `file:line: message` (at most `maxMessages` line messages).
    public private(set) var messages: [String] = []
    public private(set) var suppressedMessages = 0
    public private(set) var skippedLines: UInt64 = 0
    public private(set) var skippedFiles = 0
    public private(set) var unreadableInputs = 0
    public private(set) var filesRead = 0

    public init(options: ReportOptions = ReportOptions()) {
        builder = ReportBuilder(options: options)
    }

    /// 0: everything read; 2: some lines or files were skipped; 1: an input could not be read.
    public var exitStatus: Int32 {
        if unreadableInputs > 0 { return 1 }
        if skippedLines > 0 || skippedFiles > 0 { return 2 }
        return 0
    }

    mutating func note(_ s: String) {
        if messages.count < Self.maxMessages { messages.append(s) } else { suppressedMessages += 1 }
    }

    /// Input-level messages (unreadable, skipped files) are never capped.
    mutating func noteInput(_ s: String) { messages.append(s) }

    mutating func skip(_ name: String, _ line: Int, _ e: ReportLineError) {
        skippedLines += 1
        builder.totals.skippedLines = skippedLines
        note("\(name):\(line): skipped: \(e.message)")
    }

    /// What a file that is not a regular file is, for messages.
    package static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: return "a regular file"
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }

    /// Opens `path` for reading only if it is a regular file (a symlink to
    /// one is fine). It is checked with stat(2) before opening, so a device
    /// is never opened (opening some has effects), opened with O_NONBLOCK,
    /// so a FIFO swapped in meanwhile cannot block the open, and checked
    /// again with fstat(2). A FIFO, device or socket found in a directory is
    /// skipped (exit status 2); one named on the command line is an
    /// unreadable input (exit status 1). Nil when the file is not read.
    mutating func openRegular(_ path: String, inDirectory: Bool) -> Int32? {
        var st = stat()
        if stat(path, &st) == 0, (st.st_mode & S_IFMT) != S_IFREG {
            notRegular(path, st.st_mode, inDirectory: inDirectory)
            return nil
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            unreadableInputs += 1
            noteInput("\(path): cannot open: \(String(cString: strerror(errno)))")
            return nil
        }
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            notRegular(path, st.st_mode, inDirectory: inDirectory)
            return nil
        }
        return fd
    }

    mutating func notRegular(_ path: String, _ mode: mode_t, inDirectory: Bool) {
        if inDirectory {
            skippedFiles += 1
            noteInput("\(path): skipped: \(Self.kind(mode)), not a regular file (report reads only regular files and symlinks to them)")
        } else {
            unreadableInputs += 1
            noteInput("\(path): cannot read: \(Self.kind(mode)), not a regular file; "
                      + "report reads only regular files (save the data to a file first)")
        }
    }

    /// `*.jsonl` and `*.jsonl.gz` in `dir` (not recursive), sorted by name so
    /// rotated files come in time order before the active `synsight.jsonl`.
    /// Where both `x.jsonl` and `x.jsonl.gz` exist (the recorder is compressing
    /// x, or was interrupted doing so) only the plain file is read, so nothing
    /// is counted twice.
    public static func listDirectory(_ dir: String) -> [String]? {
        guard let d = opendir(dir) else { return nil }
        defer { closedir(d) }
        var names: [String] = []
        while let ent = readdir(d) {
            let name = withUnsafePointer(to: &ent.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name.hasSuffix(".jsonl") || name.hasSuffix(".jsonl.gz") { names.append(name) }
        }
        let plain = Set(names.filter { $0.hasSuffix(".jsonl") })
        names.removeAll { $0.hasSuffix(".jsonl.gz") && plain.contains(String($0.dropLast(3))) }
        let base = dir.hasSuffix("/") ? dir : dir + "/"
        return names.sorted().map { base + $0 }
    }

    /// A file or a directory given on the command line.
    public mutating func addInput(_ path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else {
            unreadableInputs += 1
            noteInput("\(path): cannot read: \(String(cString: strerror(errno)))")
            return
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            guard let files = Self.listDirectory(path) else {
                unreadableInputs += 1
                noteInput("\(path): cannot list directory: \(String(cString: strerror(errno)))")
                return
            }
            if files.isEmpty { noteInput("\(path): no *.jsonl files in this directory") }
            for f in files {
                // Compressed (and its plain file removed) since the listing: read the .gz.
                if !f.hasSuffix(".gz"), access(f, F_OK) != 0, errno == ENOENT, access(f + ".gz", F_OK) == 0 {
                    readFile(f + ".gz", inDirectory: true)
                } else {
                    readFile(f, inDirectory: true)
                }
            }
        } else {
            readFile(path)
        }
    }

    /// Reads one file; `inDirectory`: it was found in a directory (see `openRegular`).
    public mutating func readFile(_ path: String, inDirectory: Bool = false) {
        if path.hasSuffix(".gz") {
            readCompressed(path, inDirectory: inDirectory)
            return
        }
        guard let fd = openRegular(path, inDirectory: inDirectory) else { return }
        defer { close(fd) }
        if readStream(fd, name: path) {
            filesRead += 1
            builder.totals.files = filesRead
        } else {
            unreadableInputs += 1
        }
    }

    /// Streams `fd` line by line; false on a read error (already noted).
    mutating func readStream(_ fd: Int32, name: String) -> Bool {
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        var lines = LineSplitter(name: name)
        while true {
            let n = retryingEINTR { buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } }
            if n < 0 {
                noteInput("\(name): read error: \(String(cString: strerror(errno)))")
                return false
            }
            if n == 0 { break }
            buf.withUnsafeBufferPointer { b in
                lines.feed(UnsafeBufferPointer(rebasing: b[0..<n]), into: &self)
            }
        }
        lines.finish(into: &self)
        return true
    }

    /// `*.jsonl.gz`: streamed through zlib (all gzip members, CRCs checked),
    /// split into lines like a plain file; memory stays flat. Corrupt or
    /// truncated data ends the file with a message naming it (lines before
    /// the damage are counted) and exit status 2.
    mutating func readCompressed(_ path: String, inDirectory: Bool) {
        guard let fd = openRegular(path, inDirectory: inDirectory) else { return }
        defer { close(fd) }
        readCompressed(name: path) { Gzip.inflate(fd: fd, $0) }
    }

    /// `data` as if it were the gzip file `name` (for tests and fuzzing).
    public mutating func read(compressed data: UnsafeRawBufferPointer, name: String) {
        readCompressed(name: name) { Gzip.inflate(bytes: data, $0) }
    }

    /// The lines of what `inflate` decompresses, and how it ended.
    mutating func readCompressed(name path: String,
                                 inflate: ((UnsafeBufferPointer<UInt8>) -> Void) -> Gzip.ReadEnd) {
        var lines = LineSplitter(name: path)
        let end = inflate { chunk in lines.feed(chunk, into: &self) }
        switch end {
        case .complete:
            lines.finish(into: &self)
        case .readError:
            lines.finish(into: &self)
            unreadableInputs += 1
            noteInput("\(path): \(end.description)")
            return
        default:
            // A partial last line before the damage is not a record: drop it silently
            // (the file-level message says the rest was skipped).
            let before = lines.number
            skippedFiles += 1
            noteInput("\(path): skipped the rest: \(end.description); lines read before it: \(before)")
        }
        filesRead += 1
        builder.totals.files = filesRead
    }

    /// Reads `text` as if it were the file `name` (for tests and stdin-like input).
    public mutating func read(text: String, name: String) {
        var t = text
        t.withUTF8 { read(bytes: UnsafeRawBufferPointer($0), name: name) }
    }

    /// Reads `data` as if it were the plain file `name` (for tests and fuzzing).
    public mutating func read(bytes data: UnsafeRawBufferPointer, name: String) {
        var lines = LineSplitter(name: name)
        lines.feed(data.bindMemory(to: UInt8.self), into: &self)
        lines.finish(into: &self)
        filesRead += 1
        builder.totals.files = filesRead
    }

    package mutating func handle(line raw: UnsafeBufferPointer<UInt8>, number: Int, name: String, terminated: Bool) {
        var line = raw
        if let last = line.last, last == 0x0D { line = UnsafeBufferPointer(rebasing: line[0..<line.count - 1]) }
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }  // blank line: not a record
        if let e = builder.add(line: line) {
            if !terminated, e.message == "invalid JSON" {
                skip(name, number, ReportLineError("truncated line (no newline at end of file; the writer may have been interrupted)"))
            } else {
                skip(name, number, e)
            }
        }
    }

    /// Splits a byte stream into lines; a line longer than `maxLineBytes` is
    /// skipped without being held in memory.
    struct LineSplitter {
        package let name: String
        var carry: [UInt8] = []
        package var number = 0
        var tooLong = false
        var sawAny = false

        package init(name: String) { self.name = name }

        mutating func feed(_ chunk: UnsafeBufferPointer<UInt8>, into s: inout ReportSession) {
            if !chunk.isEmpty { sawAny = true }
            var start = 0
            while start < chunk.count {
                guard let nl = chunk[start...].firstIndex(of: 0x0A) else {
                    appendCarry(UnsafeBufferPointer(rebasing: chunk[start...]))
                    return
                }
                number += 1
                if tooLong {
                    s.skip(name, number, ReportLineError("line longer than \(ReportSession.maxLineBytes) bytes"))
                    tooLong = false
                    carry.removeAll(keepingCapacity: true)
                } else if carry.isEmpty, nl - start > ReportSession.maxLineBytes {
                    s.skip(name, number, ReportLineError("line longer than \(ReportSession.maxLineBytes) bytes"))
                } else if carry.isEmpty {
                    s.handle(line: UnsafeBufferPointer(rebasing: chunk[start..<nl]), number: number, name: name, terminated: true)
                } else {
                    appendCarry(UnsafeBufferPointer(rebasing: chunk[start..<nl]))
                    if tooLong {
                        s.skip(name, number, ReportLineError("line longer than \(ReportSession.maxLineBytes) bytes"))
                        tooLong = false
                    } else {
                        let c = carry
                        c.withUnsafeBufferPointer { s.handle(line: $0, number: number, name: name, terminated: true) }
                    }
                    carry.removeAll(keepingCapacity: carry.capacity <= 1 << 16)
                }
                start = nl + 1
            }
        }

        mutating func appendCarry(_ bytes: UnsafeBufferPointer<UInt8>) {
            if tooLong { return }
            if carry.count + bytes.count > ReportSession.maxLineBytes {
                tooLong = true
                carry = []
                return
            }
            carry.append(contentsOf: bytes)
        }

        package mutating func finish(into s: inout ReportSession) {
            if !sawAny {
                s.noteInput("\(name): empty file (no records)")
                return
            }
            guard tooLong || !carry.isEmpty else { return }
            number += 1
            if tooLong {
                s.skip(name, number, ReportLineError("line longer than \(ReportSession.maxLineBytes) bytes"))
            } else {
                let c = carry
                c.withUnsafeBufferPointer { s.handle(line: $0, number: number, name: name, terminated: false) }
            }
            carry = []
            tooLong = false
        }
    }

    /// All diagnostics for stderr, with the count of suppressed ones.
    public var diagnostics: [String] {
        var out = messages
        if suppressedMessages > 0 {
            out.append("... and \(suppressedMessages) more skipped line\(suppressedMessages == 1 ? "" : "s") not shown")
        }
        if skippedLines > 0 {
            out.append("\(skippedLines) line\(skippedLines == 1 ? " was" : "s were") skipped; the report covers the rest")
        }
        return out
    }
}
