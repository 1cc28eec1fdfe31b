// Package conf is the configuration toolkit every gatehouse package uses:
// strict YAML decoding that reports every problem with its key path and line,
// ${VAR} and ${VAR:-default} expansion from the environment, and the value
// types the file format shares (Size, Duration, Rate).
//
// Typical usage, in cmd/gatehouse:
//
//	f, err := conf.Parse("gatehouse.yaml", data, os.LookupEnv)
//	if err != nil { ... }          // YAML syntax or unset variables, with lines
//	var cfg fileConfig
//	errs := f.Decode("", &cfg)      // unknown keys, wrong types, bad sizes
//	errs.AddErr("app", cfg.App.Validate())
//	f.Locate(errs)                  // fill in line numbers
//
// Packages own their config structs: exported fields with yaml tags, a
// Defaults method that fills zero fields, and a Validate method that returns
// Errors with paths relative to the package's own section.
package conf
