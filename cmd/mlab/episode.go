package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlab/mlab/server"
)

// newEpisodeCmd is `mlab episode`: an orchestrator's side of the admin API
// of a running `mlab serve --transport http`.
func newEpisodeCmd() *cobra.Command {
	var serverURL, token, tokenFile string
	cmd := &cobra.Command{
		Use:   "episode",
		Short: "Create, inspect and end episodes on a running HTTP server, and hand an agent its own endpoint",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&serverURL, "server", "http://127.0.0.1:8080", "base URL of the mlab HTTP server")
	pf.StringVar(&token, "token", "", "bearer token of the server (also MLAB_TOKEN or --token-file)")
	pf.StringVar(&tokenFile, "token-file", "", "file holding the bearer token")
	call := func(ctx context.Context, method, path string, body any) ([]byte, error) {
		tok, err := readToken(&serveFlags{token: token, tokenFile: tokenFile})
		if err != nil {
			return nil, err
		}
		base, err := url.Parse(serverURL)
		if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
			return nil, fmt.Errorf("--server %q: want a URL like http://127.0.0.1:8080", serverURL)
		}
		var rd io.Reader
		if body != nil {
			raw, err := json.Marshal(body)
			if err != nil {
				return nil, err
			}
			rd = bytes.NewReader(raw)
		}
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(serverURL, "/")+path, rd)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "mlab-episode/"+version)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		// Creating an episode may wait for a sandbox, or for GPUs.
		resp, err := (&http.Client{Timeout: 15 * time.Minute}).Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
		}
		if resp.StatusCode/100 != 2 {
			var e struct{ Error string }
			if json.Unmarshal(raw, &e) == nil && e.Error != "" {
				return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
			}
			return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(raw)))
		}
		return raw, nil
	}

	var task string
	var asJSON bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an episode and print its id and its own MCP URL, whose tools need no episode_id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := call(cmd.Context(), http.MethodPost, "/admin/episodes", server.CreateEpisodeRequest{Task: task})
			if err != nil {
				return err
			}
			if asJSON {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			var c server.CreatedEpisode
			if err := json.Unmarshal(raw, &c); err != nil {
				return fmt.Errorf("decode answer: %w", err)
			}
			out := cmd.OutOrStdout()
			base := strings.TrimRight(serverURL, "/")
			fmt.Fprintf(out, "episode_id: %s\n", c.EpisodeID)
			fmt.Fprintf(out, "task:       %s\n", c.Task)
			fmt.Fprintf(out, "run_id:     %s\n", c.RunID)
			fmt.Fprintf(out, "mcp_url:    %s%s\n", base, c.MCP)
			fmt.Fprintf(out, "sse_url:    %s%s\n", base, c.SSE)
			fmt.Fprintf(out, "expiry:     %s\n", c.Expiry)
			return nil
		},
	}
	create.Flags().StringVar(&task, "task", "", "task of the episode (see mlab tasks)")
	create.MarkFlagRequired("task")
	create.Flags().BoolVar(&asJSON, "json", false, "print the server's JSON answer")

	show := func(use, short, method string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " EPISODE_ID",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				raw, err := call(cmd.Context(), method, "/admin/episodes/"+url.PathEscape(args[0]), nil)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(raw)
				return err
			},
		}
	}
	cmd.AddCommand(create,
		show("status", "Print an episode's status and, once scored, its result (JSON)", http.MethodGet),
		show("close", "End an episode: aborted unless it was submitted (prints its status, JSON)", http.MethodDelete))
	cmd.SetOut(os.Stdout)
	return cmd
}
