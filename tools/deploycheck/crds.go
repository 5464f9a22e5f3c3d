package main

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Local types for the custom resources the chart renders: only the fields the chart
// uses, decoded with DisallowUnknownFields so a misspelt field fails the check.
var crdTypes = map[string]func() any{
	"monitoring.coreos.com/v1 ServiceMonitor":           func() any { return new(serviceMonitor) },
	"monitoring.coreos.com/v1 PrometheusRule":           func() any { return new(prometheusRule) },
	"external-secrets.io/v1beta1 ExternalSecret":        func() any { return new(externalSecret) },
	"secrets-store.csi.x-k8s.io/v1 SecretProviderClass": func() any { return new(secretProviderClass) },
}

type crdHeader struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
}

type serviceMonitor struct {
	crdHeader `json:",inline"`
	Spec      struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			MatchNames []string `json:"matchNames,omitempty"`
			Any        bool     `json:"any,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Interval      string `json:"interval,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
			Authorization *struct {
				Type        string `json:"type,omitempty"`
				Credentials struct {
					Name     string `json:"name"`
					Key      string `json:"key"`
					Optional bool   `json:"optional,omitempty"`
				} `json:"credentials"`
			} `json:"authorization,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	crdHeader `json:",inline"`
	Spec      struct {
		Groups []ruleGroup `json:"groups"`
	} `json:"spec"`
}

type ruleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []rule `json:"rules"`
}

type rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type externalSecret struct {
	crdHeader `json:",inline"`
	Spec      struct {
		RefreshInterval string `json:"refreshInterval,omitempty"`
		SecretStoreRef  struct {
			Name string `json:"name"`
			Kind string `json:"kind,omitempty"`
		} `json:"secretStoreRef"`
		Target struct {
			Name           string `json:"name"`
			CreationPolicy string `json:"creationPolicy,omitempty"`
		} `json:"target"`
		Data []struct {
			SecretKey string `json:"secretKey"`
			RemoteRef struct {
				Key      string `json:"key"`
				Property string `json:"property,omitempty"`
				Version  string `json:"version,omitempty"`
			} `json:"remoteRef"`
		} `json:"data"`
	} `json:"spec"`
}

type secretProviderClass struct {
	crdHeader `json:",inline"`
	Spec      struct {
		Provider      string            `json:"provider"`
		Parameters    map[string]string `json:"parameters"`
		SecretObjects []struct {
			SecretName string `json:"secretName"`
			Type       string `json:"type"`
			Data       []struct {
				ObjectName string `json:"objectName"`
				Key        string `json:"key"`
			} `json:"data"`
		} `json:"secretObjects,omitempty"`
	} `json:"spec"`
}
