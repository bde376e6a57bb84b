import Foundation
import PackagePlugin

/// Compiles every `bpf/*.bpf.c` of the package into a CO-RE BPF object and
/// embeds it into the target as a generated Swift file (base64 string), so the
/// binary carries its BPF programs and `swift build` is the only build step.
///
/// Build commands have no depfile support, so every header under `bpf/` is
/// declared as an input of every object.
@main
struct BPFObjectPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let bpfDir = context.package.directoryURL.appendingPathComponent("bpf")
        let entries = try FileManager.default.contentsOfDirectory(atPath: bpfDir.path).sorted()
        let sources = entries.filter { $0.hasSuffix(".bpf.c") }.map { bpfDir.appendingPathComponent($0) }
        let headers = entries.filter { $0.hasSuffix(".h") }.map { bpfDir.appendingPathComponent($0) }
        let embed = try context.tool(named: "bpf-embed").url
        let clang = try context.tool(named: "clang").url
        let objcopy = (try? context.tool(named: "llvm-objcopy").url)
            ?? clang.deletingLastPathComponent().appendingPathComponent("llvm-objcopy")

        return sources.map { source in
            let name = String(source.lastPathComponent.dropLast(".bpf.c".count))
            let output = context.pluginWorkDirectoryURL.appendingPathComponent("BPFObject_\(name).swift")
            return .buildCommand(
                displayName: "Compiling BPF object \(name)",
                executable: embed,
                arguments: [
                    "--clang", clang.path, "--objcopy", objcopy.path,
                    "--include", bpfDir.path, "--name", name,
                    "--input", source.path, "--output", output.path,
                ],
                inputFiles: [source] + headers + [clang, embed],
                outputFiles: [output]
            )
        }
    }
}
