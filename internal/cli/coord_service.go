package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
)

type serviceResult struct{ *api.ServiceResponse }

func (r serviceResult) printHuman(out, _ io.Writer) error {
	var err error
	switch {
	case !r.IsSuccess:
		_, err = fmt.Fprintf(out, "FAILED: %s\n", r.Error)
	case r.Operation == "register":
		_, err = fmt.Fprintf(out, "Registered %s/%s (fencing token %d, deadline %s)\n", r.Service, r.InstanceID, r.FencingToken, msTime(r.DeadlineMs))
	case r.Operation == "get":
		if r.Instance == nil {
			_, err = fmt.Fprintf(out, "%s/%s: not found\n", r.Service, r.InstanceID)
			break
		}
		err = printInstance(out, r.Instance)
	case r.Operation == "discover":
		for i := range r.Instances {
			if err = printInstance(out, &r.Instances[i]); err != nil {
				break
			}
		}
	case r.Operation == "list":
		for _, s := range r.Services {
			if _, err = fmt.Fprintln(out, s); err != nil {
				break
			}
		}
	default:
		_, err = fmt.Fprintf(out, "OK: %s %s/%s\n", r.Operation, r.Service, r.InstanceID)
	}
	return err
}

// MarshalJSON always prints the instances of a discovery and the services
// of a list, also when there are none.
func (r serviceResult) MarshalJSON() ([]byte, error) {
	type plain api.ServiceResponse
	p := (*plain)(r.ServiceResponse)
	switch {
	case r.Operation == "discover" && r.IsSuccess:
		return json.Marshal(struct {
			*plain
			Instances []api.ServiceInstance `json:"instances"`
		}{p, append([]api.ServiceInstance{}, r.Instances...)})
	case r.Operation == "list" && r.IsSuccess:
		return json.Marshal(struct {
			*plain
			Services []string `json:"services"`
		}{p, append([]string{}, r.Services...)})
	}
	return json.Marshal(p)
}

func printInstance(out io.Writer, in *api.ServiceInstance) error {
	_, err := fmt.Fprintf(out, "%s\t%s\tversion %s\tweight %d\t%s\ttags %s\n", in.InstanceID, in.Address, in.Version, in.Weight, in.Health, strings.Join(in.Tags, ","))
	return err
}

func (a *app) newServiceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Service registry with TTL registrations and fencing tokens",
		Long: `Service registry. An instance registration expires --ttl milliseconds
(default 30000, at most 24 h) after it was made or last heartbeated, on the
leader's clock; an expired instance is no longer returned by discover, list
or get (register it again). Each registration
gets a fencing token strictly greater than the instance's earlier ones;
heartbeat, health, update and deregister need the current token ("fencing
token mismatch" otherwise).

Exit codes: 0 done, 1 refused or not found, 2 usage error, 3 cluster error.
--json prints {operation, service, instance_id, is_success, fencing_token,
deadline_ms, was_found, instance, instances, services, error}.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	var (
		version, tags, status, versionPrefix string
		uVersion, uTags, dTags               string
		weight, uWeight                      uint32
		ttl                                  msValue
		token                                uint64
		healthyOnly                          bool
		limit                                int
	)
	run := func(f func(coordRemote, *cobra.Command, []string) (*api.ServiceResponse, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			return a.withCoord(func(c coordRemote) error {
				resp, err := f(c, cmd, args)
				if err != nil {
					return err
				}
				ok := resp.IsSuccess && (resp.WasFound == nil || *resp.WasFound)
				return a.negative(serviceResult{resp}, ok)
			})
		}
	}
	splitTags := func(s string) []string {
		var out []string
		for t := range strings.SplitSeq(s, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
		return out
	}
	register := &cobra.Command{
		Use:   "register NAME INSTANCE ADDR [--svc-version 1.0.0] [--tags a,b] [--weight 100] [--ttl 30000]",
		Short: "Register an instance; prints its fencing token",
		Args:  exactArgs(3, "NAME INSTANCE ADDR"),
		RunE: run(func(c coordRemote, cmd *cobra.Command, args []string) (*api.ServiceResponse, error) {
			return c.ServiceRegister(cmd.Context(), &api.ServiceRequest{Service: args[0], InstanceID: args[1], Address: args[2],
				Version: version, Tags: splitTags(tags), Weight: weight, TTLMs: int64(ttl)})
		}),
	}
	register.Flags().StringVar(&version, "svc-version", api.DefaultServiceVersion, "instance version")
	register.Flags().StringVar(&tags, "tags", "", "comma-separated tags (at most 32)")
	register.Flags().Uint32Var(&weight, "weight", api.DefaultServiceWeight, "instance weight")
	ttl = api.DefaultServiceTTLMs
	register.Flags().Var(&ttl, "ttl", "registration TTL in milliseconds or as a duration (at most 24h)")

	tokenCmd := func(use, short string, f func(coordRemote, *cobra.Command, *api.ServiceRequest) (*api.ServiceResponse, error)) *cobra.Command {
		c := &cobra.Command{Use: use, Short: short, Args: exactArgs(2, "NAME INSTANCE"),
			RunE: run(func(c coordRemote, cmd *cobra.Command, args []string) (*api.ServiceResponse, error) {
				return f(c, cmd, &api.ServiceRequest{Service: args[0], InstanceID: args[1], FencingToken: token})
			})}
		c.Flags().Uint64Var(&token, "fencing-token", 0, "fencing token of the registration (required)")
		_ = c.MarkFlagRequired("fencing-token")
		return c
	}
	deregister := tokenCmd("deregister NAME INSTANCE --fencing-token T", "Remove an instance", func(c coordRemote, cmd *cobra.Command, r *api.ServiceRequest) (*api.ServiceResponse, error) {
		return c.ServiceDeregister(cmd.Context(), r)
	})
	heartbeat := tokenCmd("heartbeat NAME INSTANCE --fencing-token T", "Extend a registration to now + its TTL", func(c coordRemote, cmd *cobra.Command, r *api.ServiceRequest) (*api.ServiceResponse, error) {
		return c.ServiceHeartbeat(cmd.Context(), r)
	})
	health := tokenCmd("health NAME INSTANCE --fencing-token T --status healthy|unhealthy|unknown", "Report an instance's health", func(c coordRemote, cmd *cobra.Command, r *api.ServiceRequest) (*api.ServiceResponse, error) {
		r.Health = status
		return c.ServiceHealth(cmd.Context(), r)
	})
	health.Flags().StringVar(&status, "status", "", "healthy, unhealthy or unknown (required)")
	_ = health.MarkFlagRequired("status")
	update := tokenCmd("update NAME INSTANCE --fencing-token T [--svc-version V] [--weight W] [--tags a,b]", "Change an instance's version, weight or tags", func(c coordRemote, cmd *cobra.Command, r *api.ServiceRequest) (*api.ServiceResponse, error) {
		r.Version, r.Weight = uVersion, uWeight
		if cmd.Flags().Changed("tags") {
			r.Tags, r.SetTags = splitTags(uTags), true
		}
		return c.ServiceUpdate(cmd.Context(), r)
	})
	update.Flags().StringVar(&uVersion, "svc-version", "", "new version")
	update.Flags().Uint32Var(&uWeight, "weight", 0, "new weight")
	update.Flags().StringVar(&uTags, "tags", "", "new comma-separated tags (replaces them)")

	get := &cobra.Command{
		Use:   "get NAME INSTANCE",
		Short: "Show one instance",
		Args:  exactArgs(2, "NAME INSTANCE"),
		RunE: run(func(c coordRemote, cmd *cobra.Command, args []string) (*api.ServiceResponse, error) {
			return c.ServiceGet(cmd.Context(), &api.ServiceRequest{Service: args[0], InstanceID: args[1]})
		}),
	}
	discover := &cobra.Command{
		Use:   "discover NAME [--healthy-only] [--tags a,b] [--version-prefix P] [--limit 100]",
		Short: "List a service's instances matching the filters",
		Args:  exactArgs(1, "one NAME"),
		RunE: run(func(c coordRemote, cmd *cobra.Command, args []string) (*api.ServiceResponse, error) {
			return c.ServiceDiscover(cmd.Context(), &api.ServiceRequest{Service: args[0], HealthyOnly: healthyOnly,
				Tags: splitTags(dTags), VersionPrefix: versionPrefix, Limit: limit})
		}),
	}
	discover.Flags().BoolVar(&healthyOnly, "healthy-only", false, "only instances that are live and not reported unhealthy")
	discover.Flags().StringVar(&dTags, "tags", "", "comma-separated tags that must all be present")
	discover.Flags().StringVar(&versionPrefix, "version-prefix", "", "version prefix")
	discover.Flags().IntVar(&limit, "limit", api.DefaultServiceLimit, "at most this many instances (≤ 1000)")
	list := &cobra.Command{
		Use:   "list [PREFIX] [--limit 100]",
		Short: "List the names of services with registered instances",
		Args:  rangeArgs(0, 1, "at most one PREFIX"),
		RunE: run(func(c coordRemote, cmd *cobra.Command, args []string) (*api.ServiceResponse, error) {
			r := &api.ServiceRequest{Limit: limit}
			if len(args) == 1 {
				r.Prefix = args[0]
			}
			return c.ServiceList(cmd.Context(), r)
		}),
	}
	list.Flags().IntVar(&limit, "limit", api.DefaultServiceLimit, "at most this many services (≤ 1000)")
	cmd.AddCommand(register, deregister, heartbeat, health, update, get, discover, list)
	return cmd
}
