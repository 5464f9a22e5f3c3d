package main

import (
	"bytes"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8sjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
)

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme,
		autoscalingv2.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme, batchv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(fmt.Sprintf("BUG: cannot build the scheme: %s", err))
		}
	}
	return s
}()

var strictCodec = k8sjson.NewSerializerWithOptions(k8sjson.DefaultMetaFactory, scheme, scheme,
	k8sjson.SerializerOptions{Strict: true})

// decodeStrict decodes d into its typed Go object, failing on unknown or duplicate
// fields: the Kubernetes API types for built-in kinds, local types for the CRDs.
func decodeStrict(d doc) (any, error) {
	apiVersion, _ := d.obj["apiVersion"].(string)
	if crd, ok := crdTypes[apiVersion+" "+d.kind()]; ok {
		v := crd()
		dec := json.NewDecoder(bytes.NewReader(d.json))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return nil, fmt.Errorf("%s %s: %w", d.source, d.id(), err)
		}
		return v, nil
	}
	obj, _, err := strictCodec.Decode(d.json, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", d.source, d.id(), err)
	}
	return obj, nil
}
