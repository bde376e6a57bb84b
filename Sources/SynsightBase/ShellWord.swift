/// A word for a shell command line that advice prints for copying: left
/// plain when no shell would split or expand it, else single-quoted. The
/// words come from untrusted names (containers, units, paths); the text they
/// end up in is escaped again by whatever writes it (terminal, JSON, HTML).
package enum ShellWord {
    package static func quoted(_ s: String) -> String {
        let plain = !s.isEmpty && s.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || "/._-:@+,=".utf8.contains(c)
        }
        return plain ? s : "'" + s.replacing("'", with: "'\\''") + "'"
    }
}
