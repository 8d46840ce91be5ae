"""Schema validation, offline:
- every built-in-kind manifest against Kubernetes' own OpenAPI schemas (kubernetes-validate,
  strict: an unknown field anywhere fails), for each version in KUBERNETES_VERSIONS;
- the InferenceService against KServe's model classes (`openapi_types` and `attribute_map` of
  kserve/models/v1beta1_*.py in the pinned wheel, which ships no CRD schema), with the Kubernetes
  types inside it (containers, probes, volumes, HPA behaviour) checked by the same strict
  Kubernetes schemas.
Each validator is also shown to reject a broken copy, so that a pass means something."""

import copy
import re
import unittest

import jsonschema
import kubernetes_validate
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

from support import DEPLOY, KSERVE_FILE, KUBERNETES_VERSIONS, builtin_docs, kserve_models, kserve_wheel, kustomization, the

DEFINITIONS = "https://kubernetes.io/api/_definitions.json"  # the $id of kubernetes-validate's definitions


class BuiltInKinds(unittest.TestCase):
    def test_kustomization_lists_every_builtin_manifest(self):
        on_disk = sorted(p.name for p in DEPLOY.glob("*.yaml") if p.name not in ("kustomization.yaml", KSERVE_FILE))
        self.assertEqual(sorted(kustomization()["resources"]), on_disk)
        self.assertNotIn(KSERVE_FILE, kustomization()["resources"], "it needs KServe's CRDs; applied separately")

    def test_strict_schema_validation(self):
        docs = builtin_docs()
        kinds = {doc["kind"] for _, doc in docs}
        self.assertLessEqual(
            {"Namespace", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"},
            kinds,
        )
        for version in KUBERNETES_VERSIONS:
            for name, doc in docs:
                with self.subTest(file=name, kind=doc["kind"], kubernetes=version):
                    kubernetes_validate.validate(doc, version, strict=True)

    def test_a_misspelt_field_fails(self):
        deployment = the("Deployment")
        nested = copy.deepcopy(deployment)
        probe = nested["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
        probe["periodSecond"] = probe.pop("periodSeconds")
        top = copy.deepcopy(deployment)
        top["spec"]["stratgy"] = top["spec"].pop("strategy")
        for version in KUBERNETES_VERSIONS:
            for broken, field in ((nested, "periodSecond"), (top, "stratgy")):
                with self.subTest(field=field, kubernetes=version):
                    with self.assertRaises(kubernetes_validate.ValidationError) as caught:
                        kubernetes_validate.validate(broken, version, strict=True)
                    self.assertIn(field, caught.exception.message)
            # Why strict: without it, the same misspelling passes.
            kubernetes_validate.validate(nested, version, strict=False)


class KServeSchema:
    """Walks a manifest along KServe's model classes; Kubernetes types inside are validated
    with kubernetes-validate's strict schemas. `errors(doc)` lists what does not fit."""

    PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "datetime": str}

    def __init__(self, models, version):
        self.models = models
        definitions = schema_contents(f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version)
        self.definitions = definitions["$defs"]
        self.registry = Registry().with_resource(DEFINITIONS, Resource.from_contents(definitions))

    def errors(self, doc, type_name="V1beta1InferenceService"):
        return list(self._walk(doc, type_name, ""))

    def _walk(self, value, type_name, path):
        if match := re.fullmatch(r"list\[(.+)\]", type_name):
            if not isinstance(value, list):
                yield f"{path}: expected a list, got {value!r}"
                return
            for index, item in enumerate(value):
                yield from self._walk(item, match.group(1), f"{path}[{index}]")
        elif match := re.fullmatch(r"dict\(str, (.+)\)", type_name):
            if not isinstance(value, dict):
                yield f"{path}: expected a map, got {value!r}"
                return
            for key, item in value.items():
                yield from self._walk(item, match.group(1), f"{path}.{key}")
        elif type_name == "object":
            return
        elif type_name in self.PRIMITIVES:
            expected = self.PRIMITIVES[type_name]
            if not isinstance(value, expected) or (type_name == "int" and isinstance(value, bool)):
                yield f"{path}: expected {type_name}, got {value!r}"
        elif type_name in self.models:
            if not isinstance(value, dict):
                yield f"{path}: expected an object ({type_name}), got {value!r}"
                return
            types, attribute_map = self.models[type_name]
            attribute_of = {json_key: attribute for attribute, json_key in attribute_map.items()}
            for key, item in value.items():
                if key not in attribute_of:
                    yield f"{path}.{key}: unknown field of {type_name}"
                else:
                    yield from self._walk(item, types[attribute_of[key]], f"{path}.{key}")
        else:
            definition = self._kubernetes_definition(type_name)
            if definition is None:
                yield f"{path}: no schema known for type {type_name}"
                return
            schema = {"$ref": f"{DEFINITIONS}#/$defs/{definition}"}
            validator = jsonschema.Draft202012Validator(schema, registry=self.registry)
            for error in validator.iter_errors(value):
                where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
                yield f"{path}{where}: {error.message}"

    def _kubernetes_definition(self, type_name):
        """The Kubernetes definition behind a type name of KServe's generated client."""
        if type_name == "ResourceQuantity":
            candidates = ["io.k8s.apimachinery.pkg.api.resource.Quantity"]
        elif match := re.fullmatch(r"K8sIoApi([A-Z][a-z]+)(V\d+(?:(?:alpha|beta)\d+)?)([A-Z]\w+)", type_name):
            group, version, kind = match.groups()
            candidates = [f"io.k8s.api.{group.lower()}.{version.lower()}.{kind}"]
        elif match := re.fullmatch(r"V1([A-Z]\w+)", type_name):
            candidates = [f"io.k8s.api.core.v1.{match.group(1)}", f"io.k8s.apimachinery.pkg.apis.meta.v1.{match.group(1)}"]
        else:
            return None
        return next((name for name in candidates if name in self.definitions), None)


class InferenceServiceSchema(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.models = kserve_models(kserve_wheel())

    def test_the_wheel_describes_inference_services(self):
        self.assertIn("V1beta1InferenceService", self.models)
        self.assertIn("containers", self.models["V1beta1PredictorSpec"][1].values())

    def test_inference_service_fits_kserve_and_kubernetes_schemas(self):
        isvc = the("InferenceService")
        self.assertEqual(isvc["apiVersion"], "serving.kserve.io/v1beta1")
        for version in KUBERNETES_VERSIONS:
            with self.subTest(kubernetes=version):
                self.assertEqual(KServeSchema(self.models, version).errors(isvc), [])

    def test_misspelt_and_mistyped_fields_fail(self):
        isvc = the("InferenceService")
        broken = {}
        for field, edit in {
            "minReplica": lambda p: p.__setitem__("minReplica", p.pop("minReplicas")),  # KServe field
            "livenesProbe": lambda p: p["containers"][0].__setitem__(
                "livenesProbe", p["containers"][0].pop("livenessProbe")
            ),  # Kubernetes field inside a KServe type
            "stabilisationWindowSeconds": lambda p: p["autoScaling"]["behavior"]["scaleDown"].__setitem__(
                "stabilisationWindowSeconds", 600
            ),  # HPA behaviour, a Kubernetes type
            "minReplicas": lambda p: p.__setitem__("minReplicas", "3"),  # a string for an int
        }.items():
            doc = copy.deepcopy(isvc)
            edit(doc["spec"]["predictor"])
            broken[field] = doc
        schema = KServeSchema(self.models, KUBERNETES_VERSIONS[-1])
        for field, doc in broken.items():
            with self.subTest(field=field):
                errors = schema.errors(doc)
                self.assertTrue(any(field in error for error in errors), errors)


if __name__ == "__main__":
    unittest.main()
