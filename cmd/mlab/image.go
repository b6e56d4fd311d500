package main

import (
	"fmt"
	"io"
	"time"

	"github.com/docker/docker/client"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/mlab/mlab/sandbox/docker"
)

// newImageCmd is "mlab image": building the docker sandbox's runtime image
// offline (debootstrap from the machine's apt mirror, no registry) and
// naming its content tag.
func newImageCmd() *cobra.Command {
	var spec docker.ImageSpec
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Build the runtime image of the docker sandbox, offline, from the machine's Debian mirror",
		Args:  cobra.NoArgs,
	}
	f := cmd.PersistentFlags()
	f.StringVar(&spec.Variant, "variant", docker.VariantBase, "image variant: base (python3, numpy, pandas, scikit-learn) or full (base plus torch and xgboost)")
	f.StringVar(&spec.Suite, "suite", "bookworm", "Debian suite to bootstrap")

	build := &cobra.Command{
		Use:   "build",
		Short: "Build the runtime image unless its tag already exists, and print the tag",
		Long: "Build bootstraps Debian with debootstrap (so it must run as root) from the apt mirror of\n" +
			"this machine, imports the result into the Docker engine and prints the image's content\n" +
			"tag on stdout. An image with that tag already in the engine is reused.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := imageLogger(cmd)
			if err != nil {
				return err
			}
			cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
			if err != nil {
				return fmt.Errorf("docker client: %w", err)
			}
			defer cli.Close()
			tag, err := docker.BuildImage(cmd.Context(), cli, spec, log)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tag)
			return nil
		},
	}
	build.Flags().StringVar(&spec.Mirror, "mirror", "", "Debian mirror URL (default: the main Debian mirror of this machine's apt sources)")

	tag := &cobra.Command{
		Use:   "tag",
		Short: "Print the tag that build would produce, without building",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := spec.Validate(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), docker.ImageTag(spec))
			return nil
		},
	}
	cmd.AddCommand(build, tag)
	return cmd
}

// imageLogger logs to stderr, at the level and in the format of the root
// command's --log-level and --log-format flags when it has them (debug shows
// debootstrap's output), else at info in console format.
func imageLogger(cmd *cobra.Command) (zerolog.Logger, error) {
	lvl := zerolog.InfoLevel
	if fl := cmd.Flag("log-level"); fl != nil {
		var err error
		if lvl, err = zerolog.ParseLevel(fl.Value.String()); err != nil {
			return zerolog.Nop(), fmt.Errorf("--log-level: %w", err)
		}
	}
	var out io.Writer = zerolog.ConsoleWriter{Out: cmd.ErrOrStderr(), TimeFormat: time.TimeOnly}
	if fl := cmd.Flag("log-format"); fl != nil && fl.Value.String() == "json" {
		out = cmd.ErrOrStderr()
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}
