// Package unitfile reads and writes systemd's INI dialect: the syntax of unit
// files, repart.d and sysupdate.d definitions, and imago's own image
// definitions. It matches what systemd v252 accepts (config_parse() and
// conf_files_list_strv()), so a file means the same to imago as to the
// systemd tool that later reads it.
//
// The package owns three things:
//
//   - The line syntax (Parse, File.WriteTo): comments, [Section] headers,
//     Key=Value assignments, backslash continuation lines, a leading UTF-8
//     byte order mark, the 1 MiB line limit and systemd's UTF-8 rules. Every
//     assignment is kept, in order, with the file and line it came from;
//     which sections and keys are valid is for the caller to decide.
//   - The value helpers systemd's typed settings share: ParseBool, ParseSize
//     and word splitting with quotes and C escapes (Words, SplitWords).
//   - The search path: ListConfFiles enumerates NAME.d/*.conf style
//     directories with per-name overriding and masking, and LoadWithDropIns,
//     LoadFileWithDropIns and LoadAll add a file's NAME.d/*.conf drop-ins the
//     way config_parse_many() does. These read through an fs.FS, so the same
//     code serves an image tree on disk (os.DirFS) and embedded definitions.
//
// The normative description is docs/formats/unitfile.md.
package unitfile
