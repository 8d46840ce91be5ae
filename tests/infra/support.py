"""Shared helpers for the infra/ template tests (run by scripts/check-infra.sh).

The SDK check reads Microsoft's own Python SDK packages (azure-mgmt-*, and azure-ai-ml for the
Azure ML workspace) straight from their wheels, downloaded by scripts/check-infra.sh into
$INFRA_WHEEL_DIR and never installed or imported: the source is parsed with `ast`. Two code
generators are in use and both are read:
  - autorest/msrest models: a class's `_attribute_map` gives each attribute's serialised key
    ("properties.addressSpace": dots are nesting) and type ("[Subnet]", "{str}", "Subnet", "str");
    `_subtype_map` gives the polymorphic subclasses;
  - TypeSpec models: `attr: Optional["_models.X"] = rest_field(name="wireName")`, the annotation
    giving the type, `rest_discriminator` and `class Sub(Base, discriminator="Value")` giving
    the polymorphic subclasses.
The API version a resource type is served with is read from the SDK's request builders: the PUT
whose URL ends in that type's path, and its default `api-version`.
"""

import ast
import json
import os
import re
import zipfile
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
TEMPLATE = INFRA / "main.json"
PARAMETERS = INFRA / "main.parameters.json"
APP_SETTINGS = INFRA / "containerapp.json"
HERE = Path(__file__).resolve().parent

# ARM's own resource keys, outside the resource provider's model.
ENVELOPE = {"type", "apiVersion", "name", "dependsOn", "condition", "comments", "metadata", "copy", "scope", "resources"}

PRIMITIVES = {"str", "int", "float", "bool", "long", "iso-8601", "rfc-1123", "duration", "date", "time",
              "bytearray", "base64", "unix-time", "decimal"}


def load_json(path):
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def template():
    return load_json(TEMPLATE)


def wheel_dir():
    folder = os.environ.get("INFRA_WHEEL_DIR")
    if not folder:
        raise RuntimeError("INFRA_WHEEL_DIR is not set: run scripts/check-infra.sh")
    return Path(folder)


@lru_cache(maxsize=None)
def wheel(distribution):
    """The one downloaded wheel of a distribution (e.g. azure-mgmt-network), as a ZipFile."""
    prefix = distribution.replace("-", "_") + "-"
    found = [p for p in wheel_dir().glob("*.whl") if p.name.startswith(prefix)]
    if len(found) != 1:
        raise AssertionError(f"expected one wheel of {distribution} in {wheel_dir()}, found {found}")
    return zipfile.ZipFile(found[0])


def sources(distribution, folder):
    """{path: source} of the .py files under `folder` inside the wheel."""
    archive = wheel(distribution)
    return {n: archive.read(n).decode("utf-8") for n in archive.namelist()
            if n.startswith(folder.rstrip("/") + "/") and n.endswith(".py")}


# ---------------------------------------------------------------------------------------------
# API versions: (resource type, api-version) of every PUT request builder.

BUILDER = re.compile(r"\ndef (build_\w+)\(.*?(?=\ndef |\nclass |\Z)", re.S)
URL = re.compile(r'_url\s*(?::\s*str\s*)?=\s*(?:kwargs\.pop\(\s*"template_url",\s*)?"([^"]+)"')
API = re.compile(r'"api-version",\s*"([^"]+)"')


def resource_type_of(url):
    """'/subscriptions/.../providers/Microsoft.Network/virtualNetworks/{n}/subnets/{s}' →
    'Microsoft.Network/virtualNetworks/subnets' (None when the URL does not name one resource)."""
    if "/providers/" not in url:
        return None
    parts = url.rsplit("/providers/", 1)[1].strip("/").split("/")
    if len(parts) < 3 or len(parts) % 2 == 0:
        return None
    names = parts[2::2]
    if not all(n.startswith("{") for n in names):
        return None
    return "/".join([parts[0], *parts[1::2]])


@lru_cache(maxsize=None)
def put_api_versions(distribution, folder):
    found = set()
    for path, text in sources(distribution, folder).items():
        if "/operations/" not in path:
            continue
        for match in BUILDER.finditer(text):
            body = match.group(0)
            if 'method="PUT"' not in body:
                continue
            url, api = URL.search(body), API.search(body)
            if url and api:
                kind = resource_type_of(url.group(1))
                if kind:
                    found.add((kind.lower(), api.group(1)))
    return found


# ---------------------------------------------------------------------------------------------
# Models.

class Model:
    """One model class: `fields` maps serialised key → type, where a type is
    ("model", name) | ("list", type) | ("dict", type) | ("any",) | ("primitive",);
    `subtypes` maps a discriminator value to a subclass name, `discriminator` its wire key."""

    def __init__(self, name):
        self.name = name
        self.fields = {}
        self.subtypes = {}
        self.discriminator = None
        self.bases = []


def parse_msrest_type(text, classes):
    if text.startswith("[") and text.endswith("]"):
        return ("list", parse_msrest_type(text[1:-1], classes))
    if text.startswith("{") and text.endswith("}"):
        return ("dict", parse_msrest_type(text[1:-1], classes))
    if text == "object":
        return ("any",)
    if text in classes:
        return ("model", text)
    return ("primitive",)


def parse_annotation(node, classes):
    """The type of a TypeSpec field from its annotation's AST."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return parse_annotation(ast.parse(node.value, mode="eval").body, classes)
        except SyntaxError:
            return ("primitive",)
    if isinstance(node, ast.Attribute):  # _models.X
        return ("model", node.attr) if node.attr in classes else ("primitive",)
    if isinstance(node, ast.Name):
        if node.id == "Any":
            return ("any",)
        return ("model", node.id) if node.id in classes else ("primitive",)
    if isinstance(node, ast.Subscript):
        outer = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
        inner = node.slice
        args = list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
        if outer in ("Optional", "Union"):
            kinds = [parse_annotation(a, classes) for a in args]
            for wanted in ("model", "list", "dict", "any"):
                for kind in kinds:
                    if kind[0] == wanted:
                        return kind
            return ("primitive",)
        if outer in ("list", "List"):
            return ("list", parse_annotation(args[0], classes))
        if outer in ("dict", "Dict"):
            return ("dict", parse_annotation(args[-1], classes))
        if outer == "Literal":
            return ("primitive",)
    return ("primitive",)


def _str(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


@lru_cache(maxsize=None)
def models(distribution, folder):
    """{class name: Model} of every model class under folder/models/ in the wheel."""
    trees = [ast.parse(text) for path, text in sources(distribution, folder).items()
             if "/models/" in path and "/aio/" not in path]
    class_defs = [node for tree in trees for node in tree.body if isinstance(node, ast.ClassDef)]
    classes = {c.name for c in class_defs
               if not any(getattr(b, "id", getattr(b, "attr", "")) in ("Enum", "CaseInsensitiveEnumMeta")
                          or "Enum" in getattr(b, "id", "") for b in c.bases)}
    result = {}
    for cls in class_defs:
        if cls.name not in classes:
            continue
        model = result.setdefault(cls.name, Model(cls.name))
        model.bases = [getattr(b, "id", getattr(b, "attr", None)) for b in cls.bases]
        for keyword in cls.keywords:  # class Sub(Base, discriminator="Value")
            if keyword.arg == "discriminator" and _str(keyword.value):
                for base in model.bases:
                    if base in classes:
                        result.setdefault(base, Model(base)).subtypes[keyword.value.value] = cls.name
        for stmt in cls.body:
            # msrest: _attribute_map / _subtype_map
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
                name = getattr(target, "id", None)
                if name == "_attribute_map" and isinstance(stmt.value, ast.Dict):
                    for key_node, value in zip(stmt.value.keys, stmt.value.values):
                        entry = {_str(k): _str(v) for k, v in zip(value.keys, value.values)}
                        model.fields[entry["key"]] = (parse_msrest_type(entry["type"], classes), _str(key_node))
                    continue
                if name == "_subtype_map" and isinstance(stmt.value, ast.Dict):
                    attr = _str(stmt.value.keys[0])
                    mapping = stmt.value.values[0]
                    model.subtypes.update({_str(k): _str(v) for k, v in zip(mapping.keys, mapping.values)})
                    model.discriminator = ("attr", attr)
                    continue
            # TypeSpec: x: T = rest_field(name=...) / rest_discriminator(name=...)
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.value, ast.Call):
                func = getattr(stmt.value.func, "id", getattr(stmt.value.func, "attr", ""))
                if func not in ("rest_field", "rest_discriminator"):
                    continue
                wire = stmt.target.id
                for keyword in stmt.value.keywords:
                    if keyword.arg == "name" and _str(keyword.value):
                        wire = keyword.value.value
                model.fields[wire] = (parse_annotation(stmt.annotation, classes), stmt.target.id)
                if func == "rest_discriminator":
                    model.discriminator = ("wire", wire)
    # msrest's discriminator is named by attribute: turn it into its wire key.
    for model in result.values():
        if model.discriminator and model.discriminator[0] == "attr":
            wires = [k for k, (_, attr) in all_fields(result, model.name).items() if attr == model.discriminator[1]]
            model.discriminator = ("wire", wires[0] if wires else model.discriminator[1])
    return result


def all_fields(table, name):
    """A model's fields including those of its base classes (msrest maps repeat them anyway)."""
    fields = {}
    model = table.get(name)
    if model is None:
        return fields
    for base in model.bases:
        if base in table and base != name:
            fields.update(all_fields(table, base))
    fields.update(model.fields)
    return fields


def discriminator_of(table, name):
    model = table.get(name)
    while model is not None:
        if model.discriminator:
            return model.discriminator[1], model.subtypes
        model = next((table[b] for b in model.bases if b in table), None)
    return None, {}


def is_expression(value):
    return isinstance(value, str) and value.startswith("[") and not value.startswith("[[")


def check_value(table, kind, value, path, errors):
    """Checks a JSON value against an SDK type; appends 'path: problem' strings to errors."""
    if is_expression(value) or kind[0] in ("any", "primitive"):
        return
    if kind[0] == "list":
        if isinstance(value, list):
            for index, item in enumerate(value):
                check_value(table, kind[1], item, f"{path}[{index}]", errors)
        else:
            errors.append(f"{path}: expected a list")
        return
    if kind[0] == "dict":
        if isinstance(value, dict):
            for key, item in value.items():
                check_value(table, kind[1], item, f"{path}.{key}", errors)
        else:
            errors.append(f"{path}: expected an object")
        return
    check_object(table, kind[1], value, path, errors)


def check_object(table, name, value, path, errors, skip=()):
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({name})")
        return
    wire, subtypes = discriminator_of(table, name)
    if wire and isinstance(value.get(wire), str) and value[wire] in subtypes:
        name = subtypes[value[wire]]
    fields = all_fields(table, name)
    walk(table, name, fields, "", value, path, errors, skip)


def walk(table, name, fields, prefix, value, path, errors, skip):
    for key, item in value.items():
        if key in skip:
            continue
        full = prefix + key
        where = f"{path}.{key}" if path else key
        escaped = full.replace(".", "\\.")
        leaf = fields.get(full) or fields.get(escaped) if "." in key else fields.get(full)
        if leaf is not None:
            check_value(table, leaf[0], item, where, errors)
        elif any(k.startswith(full + ".") for k in fields):  # msrest flattening: properties.x
            if is_expression(item):
                continue
            if isinstance(item, dict):
                walk(table, name, fields, full + ".", item, where, errors, skip=())
            else:
                errors.append(f"{where}: expected an object")
        else:
            errors.append(f"{where}: no such property in {name}")


def check_resource(resource, sdk):
    """Problems of one template resource against its SDK entry
    (distribution, folder, model class): unknown type/apiVersion, unknown property keys."""
    distribution, folder, model_name = sdk
    errors = []
    key = (resource["type"].lower(), resource["apiVersion"])
    if key not in put_api_versions(distribution, folder):
        served = sorted(v for t, v in put_api_versions(distribution, folder) if t == key[0])
        errors.append(f"{resource['type']}@{resource['apiVersion']}: {distribution} ({folder}) has no PUT "
                      f"for this API version (it has {served or 'none for this type'})")
    table = models(distribution, folder)
    if model_name not in table:
        errors.append(f"{model_name}: no such model in {distribution} ({folder})")
        return errors
    body = {k: v for k, v in resource.items() if k not in ENVELOPE}
    check_object(table, model_name, body, resource["type"], errors)
    return errors


def iter_resources(resources):
    """Every resource, including child resources declared inside a parent's `resources`."""
    for resource in resources:
        yield resource
        yield from iter_resources(resource.get("resources", []))
