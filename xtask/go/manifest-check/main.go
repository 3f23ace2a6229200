// Command manifest-check validates Kubernetes and Istio manifests offline, the way the API
// server would take them, with the projects' own types and schemas:
//
//   - Kubernetes objects (Deployment, Service, Secret, PodDisruptionBudget, NetworkPolicy, ...)
//     are decoded strictly into the official Go types of k8s.io/api, and the Prometheus
//     Operator's ServiceMonitor into its own (apimachinery's strict decoder: unknown fields,
//     duplicate fields and wrong types are errors; field names are case-sensitive);
//   - custom resources (Istio's Gateway, VirtualService, AuthorizationPolicy, EnvoyFilter, ...)
//     are checked against their CustomResourceDefinitions' structural schemas with
//     k8s.io/apiextensions-apiserver, as the API server does: unknown (pruned) fields, the
//     OpenAPI schema, embedded ObjectMeta and the x-kubernetes-validations CEL rules. The CRDs
//     are Istio's own (istio.io/api's kubernetes/customresourcedefinitions.gen.yaml) and the
//     Gateway API's standard Gateway and HTTPRoute (sigs.k8s.io/gateway-api's
//     config/crd/standard/), read from the directory crds/ next to the executable, and any given
//     with --crds;
//   - Istio's mesh config (the data.mesh of istiod's ConfigMap `istio`, and an IstioOperator's
//     spec.meshConfig) is decoded strictly into istio.io/api's MeshConfig;
//   - every object's metadata is validated as the API server does (names, labels, annotations).
//
// Usage: manifest-check [--crds FILE]... FILE... (`-` reads standard input). One line per
// object (`ok ...`) or per problem (`FILE: document N: KIND NAME: problem`), then a summary
// line. Exit status: 0 when every object is valid, 1 when any problem was found, 2 when a file
// cannot be read or a CRD cannot be loaded. A kind it has no schema for is a problem, never
// skipped.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"google.golang.org/protobuf/encoding/protojson"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

// requiredGroups are the API groups whose CRDs crds/ must hold: Istio's (istio.io/api) and the
// Gateway API's (sigs.k8s.io/gateway-api), which xtask copies next to the executable from the
// modules this program pins.
var requiredGroups = []string{"networking.istio.io", "security.istio.io", gatewayv1.GroupName}

// crdList is the repeatable --crds flag.
type crdList []string

func (c *crdList) String() string     { return strings.Join(*c, ",") }
func (c *crdList) Set(v string) error { *c = append(*c, v); return nil }

func main() {
	var crdFiles crdList
	flag.Var(&crdFiles, "crds", "a file of CustomResourceDefinitions to validate custom resources against (repeatable; crds/*.yaml next to the executable are always read)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: manifest-check [--crds FILE]... FILE... ('-' reads standard input)\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	files, err := defaultCRDFiles()
	if err != nil {
		fmt.Fprintf(os.Stderr, "manifest-check: %v\n", err)
		os.Exit(2)
	}
	files = append(files, crdFiles...)
	c := newChecker()
	for _, f := range files {
		if err := c.loadCRDs(f); err != nil {
			fmt.Fprintf(os.Stderr, "manifest-check: %v\n", err)
			os.Exit(2)
		}
	}
	if len(c.crds) == 0 {
		fmt.Fprintf(os.Stderr, "manifest-check: no CustomResourceDefinitions loaded (expected crds/*.yaml next to the executable, or --crds)\n")
		os.Exit(2)
	}
	if missing := c.missingGroups(requiredGroups); len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "manifest-check: no CustomResourceDefinition of %s loaded (expected crds/*.yaml next to the executable: rebuild with cargo xtask install)\n", strings.Join(missing, ", "))
		os.Exit(2)
	}
	objects, problems := 0, 0
	for _, name := range flag.Args() {
		data, err := readInput(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "manifest-check: %v\n", err)
			os.Exit(2)
		}
		o, p := c.checkFile(os.Stdout, name, data)
		objects += o
		problems += p
	}
	fmt.Printf("manifest-check: %d objects checked, %d problems (%d CRDs known)\n", objects, problems, len(c.crds))
	if problems > 0 {
		os.Exit(1)
	}
}

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

// defaultCRDFiles lists crds/*.yaml next to the executable.
func defaultCRDFiles() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	files, err := filepath.Glob(filepath.Join(filepath.Dir(exe), "crds", "*.yaml"))
	sort.Strings(files)
	return files, err
}

// crd is one served version of a CustomResourceDefinition, ready to validate with.
type crd struct {
	source     string
	namespaced bool
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

type checker struct {
	// By group, kind and version.
	crds    map[schema.GroupVersionKind]*crd
	decoder runtime.Decoder
	scheme  *runtime.Scheme
}

func newChecker() *checker {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, autoscalingv1.AddToScheme,
		autoscalingv2.AddToScheme, networkingv1.AddToScheme, rbacv1.AddToScheme, batchv1.AddToScheme,
		// The Prometheus Operator's ServiceMonitor (the chart's metrics.serviceMonitor).
		monitoringv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	codecs := serializer.NewCodecFactory(scheme, serializer.EnableStrict)
	return &checker{
		crds:    map[schema.GroupVersionKind]*crd{},
		decoder: codecs.UniversalDeserializer(),
		scheme:  scheme,
	}
}

// loadCRDs reads every CustomResourceDefinition of a file and compiles the schema of each
// served version.
func (c *checker) loadCRDs(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	docs, err := splitDocuments(data)
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	for _, doc := range docs {
		var v1 apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(doc.data, &v1); err != nil {
			return fmt.Errorf("%s: document %d: %v", path, doc.index, err)
		}
		if v1.Kind != "CustomResourceDefinition" {
			continue
		}
		var internal apiextensions.CustomResourceDefinition
		if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1, &internal, nil); err != nil {
			return fmt.Errorf("%s: %s: %v", path, v1.Name, err)
		}
		for _, version := range internal.Spec.Versions {
			if !version.Served {
				continue
			}
			var props *apiextensions.JSONSchemaProps
			if version.Schema != nil {
				props = version.Schema.OpenAPIV3Schema
			} else if internal.Spec.Validation != nil {
				props = internal.Spec.Validation.OpenAPIV3Schema
			}
			if props == nil {
				return fmt.Errorf("%s: %s %s has no schema", path, v1.Name, version.Name)
			}
			structural, err := structuralschema.NewStructural(props)
			if err != nil {
				return fmt.Errorf("%s: %s %s: not a structural schema: %v", path, v1.Name, version.Name, err)
			}
			validator, _, err := apiservervalidation.NewSchemaValidator(props)
			if err != nil {
				return fmt.Errorf("%s: %s %s: %v", path, v1.Name, version.Name, err)
			}
			gvk := schema.GroupVersionKind{Group: internal.Spec.Group, Version: version.Name, Kind: internal.Spec.Names.Kind}
			c.crds[gvk] = &crd{
				source:     filepath.Base(path),
				namespaced: internal.Spec.Scope == apiextensions.NamespaceScoped,
				structural: structural,
				validator:  validator,
				cel:        cel.NewValidator(structural, true, celconfig.PerCallLimit),
			}
		}
	}
	return nil
}

// missingGroups lists the groups of which no CRD is loaded.
func (c *checker) missingGroups(groups []string) []string {
	var missing []string
	for _, group := range groups {
		found := false
		for gvk := range c.crds {
			found = found || gvk.Group == group
		}
		if !found {
			missing = append(missing, group)
		}
	}
	return missing
}

type document struct {
	index int
	data  []byte
}

// splitDocuments splits a multi-document YAML stream, leaving out empty documents (only
// comments, as `helm template` prints for templates that render nothing).
func splitDocuments(data []byte) ([]document, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []document
	for index := 1; ; index++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %v", index, err)
		}
		if isEmpty(doc) {
			continue
		}
		docs = append(docs, document{index: index, data: doc})
	}
}

func isEmpty(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && line != "---" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

// checkFile checks every document of a file, printing a line per object or problem; returns
// the number of objects and of problems.
func (c *checker) checkFile(out io.Writer, name string, data []byte) (objects, problems int) {
	docs, err := splitDocuments(data)
	if err != nil {
		fmt.Fprintf(out, "%s: %v\n", name, err)
		return 0, 1
	}
	for _, doc := range docs {
		objects++
		what, how, errs := c.checkDocument(doc.data)
		if len(errs) == 0 {
			fmt.Fprintf(out, "ok %s: document %d: %s (%s)\n", name, doc.index, what, how)
			continue
		}
		for _, e := range errs {
			problems++
			fmt.Fprintf(out, "%s: document %d: %s: %s\n", name, doc.index, what, e)
		}
	}
	return objects, problems
}

// checkDocument validates one YAML document: what it is (`apps/v1 Deployment ns/name`), what it
// was checked with, and the problems found.
func (c *checker) checkDocument(doc []byte) (what, how string, problems []string) {
	// Duplicate keys are errors, as in the API server's strict decoding.
	jsonData, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return "?", "", []string{fmt.Sprintf("YAML: %v", err)}
	}
	// As the API server decodes: whole numbers as int64 (the CRDs' CEL rules compare them as int).
	var obj map[string]interface{}
	if err := utiljson.Unmarshal(jsonData, &obj); err != nil || obj == nil {
		return "?", "", []string{"not a YAML mapping (an object needs apiVersion, kind and metadata)"}
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	name, namespace := "", ""
	if m, ok := obj["metadata"].(map[string]interface{}); ok {
		name, _ = m["name"].(string)
		namespace, _ = m["namespace"].(string)
	}
	what = strings.TrimSpace(fmt.Sprintf("%s %s %s", apiVersion, kind, qualified(namespace, name)))
	if apiVersion == "" || kind == "" {
		return what, "", []string{"apiVersion and kind are required"}
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return what, "", []string{fmt.Sprintf("apiVersion: %v", err)}
	}
	gvk := gv.WithKind(kind)
	switch {
	case c.scheme.Recognizes(gvk):
		how = "Go API types, strict decoding"
		problems = c.checkBuiltin(jsonData, gvk)
		if kind == "ConfigMap" && gv.Group == "" && isMeshConfigMap(name) {
			how += "; data.mesh as istio.io/api MeshConfig"
			if data, ok := obj["data"].(map[string]interface{}); ok {
				if mesh, ok := data["mesh"].(string); ok {
					problems = append(problems, prefixed("data.mesh", checkMeshConfig([]byte(mesh)))...)
				}
			}
		}
	case gvk.Group == "install.istio.io" && kind == "IstioOperator":
		// istio.io/api publishes no IstioOperator schema: its metadata and meshConfig are checked.
		how = "metadata; spec.meshConfig as istio.io/api MeshConfig"
		problems = checkMetadata(obj, true, apivalidation.NameIsDNSSubdomain)
		if spec, ok := obj["spec"].(map[string]interface{}); ok {
			if mesh, ok := spec["meshConfig"]; ok {
				meshJSON, _ := yaml.Marshal(mesh)
				problems = append(problems, prefixed("spec.meshConfig", checkMeshConfig(meshJSON))...)
			}
		}
	default:
		def, ok := c.crds[gvk]
		if !ok {
			return what, "", []string{c.noSchema(gvk)}
		}
		how = "CRD schema from " + def.source
		problems = def.check(obj)
	}
	return what, how, problems
}

func qualified(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

func prefixed(prefix string, problems []string) []string {
	out := make([]string, len(problems))
	for i, p := range problems {
		out[i] = prefix + ": " + p
	}
	return out
}

// noSchema explains a kind with neither a Go type nor a CRD: a wrong apiVersion, or a CRD to add.
func (c *checker) noSchema(gvk schema.GroupVersionKind) string {
	var versions []string
	for known := range c.crds {
		if known.Group == gvk.Group && known.Kind == gvk.Kind {
			versions = append(versions, known.Version)
		}
	}
	for known := range c.scheme.AllKnownTypes() {
		if known.Group == gvk.Group && known.Kind == gvk.Kind {
			versions = append(versions, known.Version)
		}
	}
	if len(versions) > 0 {
		sort.Strings(versions)
		return fmt.Sprintf("version %q of %s is not served (served: %s)", gvk.Version, gvk.GroupKind(), strings.Join(versions, ", "))
	}
	return fmt.Sprintf("no schema known for %s (not a k8s.io/api type, and no CustomResourceDefinition loaded for it: add one with --crds)", gvk)
}

// checkBuiltin decodes a Kubernetes object strictly into its k8s.io/api type and validates its
// metadata.
func (c *checker) checkBuiltin(jsonData []byte, gvk schema.GroupVersionKind) []string {
	var problems []string
	obj, _, err := c.decoder.Decode(jsonData, nil, nil)
	if err != nil {
		if !runtime.IsStrictDecodingError(err) || obj == nil {
			return []string{err.Error()}
		}
		if strict, ok := runtime.AsStrictDecodingError(err); ok {
			for _, e := range strict.Errors() {
				problems = append(problems, e.Error())
			}
		} else {
			problems = append(problems, err.Error())
		}
	}
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return append(problems, err.Error())
	}
	nameFn := apivalidation.NameIsDNSSubdomain
	if gvk.Group == "" && gvk.Kind == "Service" {
		nameFn = apivalidation.NameIsDNS1035Label
	}
	namespaced := !clusterScoped[gvk.GroupKind()]
	if namespaced && accessor.GetNamespace() == "" {
		// kubectl and Helm fill it in.
		accessor.SetNamespace("default")
	}
	for _, e := range apivalidation.ValidateObjectMetaAccessor(accessor, namespaced, nameFn, field.NewPath("metadata")) {
		problems = append(problems, e.Error())
	}
	return problems
}

var clusterScoped = map[schema.GroupKind]bool{
	{Group: "", Kind: "Namespace"}:                                   true,
	{Group: "", Kind: "Node"}:                                        true,
	{Group: "", Kind: "PersistentVolume"}:                            true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:        true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}: true,
	{Group: "networking.k8s.io", Kind: "IngressClass"}:               true,
}

// checkMetadata validates an unstructured object's metadata as the API server does.
func checkMetadata(obj map[string]interface{}, namespaced bool, nameFn apivalidation.ValidateNameFunc) []string {
	objectMeta, found, unknown, err := schemaobjectmeta.GetObjectMetaWithOptions(obj, schemaobjectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	if err != nil {
		return []string{fmt.Sprintf("metadata: %v", err)}
	}
	if !found {
		return []string{"metadata: Required value"}
	}
	var problems []string
	for _, path := range unknown {
		problems = append(problems, fmt.Sprintf("unknown field %q", path))
	}
	if namespaced && objectMeta.Namespace == "" {
		objectMeta.Namespace = "default"
	}
	for _, e := range apivalidation.ValidateObjectMeta(objectMeta, namespaced, nameFn, field.NewPath("metadata")) {
		problems = append(problems, e.Error())
	}
	return problems
}

// check validates a custom resource as the API server does on create: unknown fields (what it
// would prune), the schema's defaults, then the OpenAPI schema, embedded ObjectMeta, the CEL
// rules and the metadata.
func (d *crd) check(obj map[string]interface{}) []string {
	problems := checkMetadata(obj, d.namespaced, apivalidation.NameIsDNSSubdomain)
	pruned := runtime.DeepCopyJSON(obj)
	unknown := pruning.PruneWithOptions(pruned, d.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	// The schema's defaults, which the API server applies before validating (the Gateway API's
	// CEL rules read defaulted fields such as a backendRef's group and kind).
	structuraldefaulting.Default(pruned, d.structural)
	sort.Strings(unknown)
	for _, path := range unknown {
		problems = append(problems, fmt.Sprintf("unknown field %q", path))
	}
	if err, paths := schemaobjectmeta.CoerceWithOptions(nil, pruned, d.structural, false, schemaobjectmeta.CoerceOptions{ReturnUnknownFieldPaths: true}); err != nil {
		problems = append(problems, err.Error())
	} else {
		for _, path := range paths {
			problems = append(problems, fmt.Sprintf("unknown field %q", path))
		}
	}
	for _, e := range apiservervalidation.ValidateCustomResource(nil, pruned, d.validator) {
		problems = append(problems, e.Error())
	}
	ctx := context.Background()
	for _, e := range schemaobjectmeta.Validate(ctx, nil, pruned, d.structural, false) {
		problems = append(problems, e.Error())
	}
	if d.cel != nil {
		errs, _ := d.cel.Validate(ctx, nil, d.structural, pruned, nil, celconfig.RuntimeCELCostBudget)
		for _, e := range errs {
			problems = append(problems, e.Error())
		}
	}
	return problems
}

// isMeshConfigMap: istiod's mesh ConfigMap, `istio` or `istio-<revision>`.
func isMeshConfigMap(name string) bool {
	return name == "istio" || strings.HasPrefix(name, "istio-")
}

// checkMeshConfig decodes a mesh config (YAML) strictly into istio.io/api's MeshConfig: unknown
// fields and wrong types are errors.
func checkMeshConfig(data []byte) []string {
	jsonData, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return []string{fmt.Sprintf("YAML: %v", err)}
	}
	var mesh meshv1alpha1.MeshConfig
	if err := (protojson.UnmarshalOptions{}).Unmarshal(jsonData, &mesh); err != nil {
		return []string{fmt.Sprintf("not an istio.io/api MeshConfig: %v", err)}
	}
	return nil
}
