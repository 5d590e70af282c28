/**
 * The rules for names and text (text/names.ts), as a spec: first every
 * lookalike from the hardening issue, then ordinary names in many scripts,
 * then properties that fast-check tries on thousands of generated strings
 * (seeded; see tests/fuzzing.ts).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { checkName, cleanText, escapeJsonLine, nameKey, RESERVED_NAMES } from "../text/names.ts";
import { check } from "./fuzzing.ts";

const MAX = 32;

function accepted(wanted: string): string {
  const result = checkName(wanted, MAX);
  assert.ok(result.ok, `${JSON.stringify(wanted)} refused: ${!result.ok && result.reason}`);
  return result.name;
}

function refused(wanted: string): string {
  const result = checkName(wanted, MAX);
  assert.ok(!result.ok, `${JSON.stringify(wanted)} accepted as ${JSON.stringify(result)}`);
  return result.reason;
}

// ---------------------------------------------------------------- the examples

Deno.test("a name with an invisible mark after it is refused, and keyed as the plain name", () => {
  for (const mark of ["\u034F", "\uFE0F", "\u17B4", "\u180B", "\u200B", "\u2060", "\uFEFF"]) {
    const hex = mark.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
    assert.equal(
      refused(`ada${mark}`),
      `"ada\\u{${mark.codePointAt(0)!.toString(16).toUpperCase()}}" contains an invisible ` +
        `character (U+${hex})`,
    );
    assert.equal(nameKey(`ada${mark}`), nameKey("ada"));
  }
});

Deno.test("blank-looking Hangul fillers are refused, alone or in a name", () => {
  for (const filler of ["\u3164", "\u115F", "\u1160", "\uFFA0"]) {
    assert.match(refused(filler), /contains an invisible character/);
    assert.match(refused(`ada${filler}`), /contains an invisible character/);
    assert.match(refused(`${filler}ada`), /contains an invisible character/);
  }
});

Deno.test("bidirectional controls and control characters are refused", () => {
  assert.equal(
    refused("ada\u202Egnp"),
    '"ada\\u{202E}gnp" contains a character that reverses the direction of text (U+202E)',
  );
  for (const bidi of ["\u200E", "\u200F", "\u061C", "\u202A", "\u2066", "\u2069"]) {
    assert.match(refused(`ada${bidi}`), /reverses the direction of text/);
  }
  assert.equal(refused("ada\u0007"), '"ada\\u{7}" contains a control character (U+0007)');
  assert.match(refused("ada\u0085"), /contains a control character \(U\+0085\)/);
});

Deno.test("Cyrillic and Greek letters among Latin ones are refused as mixed scripts", () => {
  assert.equal(
    refused("\u0430da"),
    '"\u0430da" mixes letters of different scripts (Latin and Cyrillic)',
  );
  assert.equal(
    refused("t\u0435acher"),
    '"t\u0435acher" mixes letters of different scripts (Latin and Cyrillic)',
  );
  assert.equal(
    refused("\u0391da"),
    '"\u0391da" mixes letters of different scripts (Latin and Greek)',
  );
  // And were they let in elsewhere, they are keyed as the name they imitate.
  assert.equal(nameKey("\u0430da"), nameKey("ada"));
  assert.equal(nameKey("t\u0435acher"), nameKey("teacher"));
  assert.equal(nameKey("\u0391da"), nameKey("ada"));
});

Deno.test("fullwidth and mathematical letters become plain ones, with the same key", () => {
  assert.equal(accepted("ａｄａ"), "ada");
  assert.equal(accepted("𝐚𝐝𝐚"), "ada");
  assert.equal(accepted("𝒜𝒹𝒶"), "Ada");
  assert.equal(accepted("ｔｅａｃｈｅｒ"), "teacher");
  for (const look of ["ａｄａ", "𝐚𝐝𝐚", "ＡＤＡ", "𝒜𝒹𝒶"]) {
    assert.equal(nameKey(look), nameKey("ada"));
  }
});

Deno.test("a name all in Greek is allowed, keyed by what its letters look like", () => {
  assert.equal(accepted("Αδα"), "Αδα");
  // Α and α look like a, but δ is not d: TR39's skeleton keeps them apart.
  assert.notEqual(nameKey("Αδα"), nameKey("ada"));
  assert.equal(nameKey("Αδα"), nameKey("αδα"));
  assert.equal(nameKey("ΑΔΑ"), nameKey("αδα"));
});

Deno.test("reserved names and their lookalikes are refused", () => {
  assert.equal(refused("server"), '"server" is reserved');
  assert.equal(refused("Server"), '"Server" is reserved');
  assert.equal(refused("administrator"), '"administrator" is reserved');
  assert.equal(refused("\u0455erver"), '"\u0455erver" looks like "server", which is reserved');
  assert.equal(refused("server."), "a name must end with a letter or digit");
  assert.equal(refused("r00t"), '"r00t" looks like "root", which is reserved');
  assert.match(refused("ＡＤＭＩＮ"), /reserved/);
  assert.match(refused("𝐬𝐞𝐫𝐯𝐞𝐫"), /reserved/);
  assert.match(refused("\u0430dmin"), /reserved/); // Cyrillic а
  for (const name of RESERVED_NAMES) {
    assert.match(refused(name), /is reserved$/);
    assert.match(refused(name.toUpperCase()), /is reserved$/);
  }
  // Ordinary roles in a class are not reserved.
  for (const name of ["teacher", "instructor", "student", "tutor", "guest", "servers", "admins"]) {
    accepted(name);
  }
});

Deno.test("room names follow the same rules", () => {
  assert.match(refused("lobby\u034F"), /contains an invisible character \(U\+034F\)/);
  assert.equal(nameKey("lobby\u034F"), nameKey("lobby"));
  assert.equal(nameKey("ＬＯＢＢＹ"), nameKey("lobby"));
  assert.match(refused("l\u043Ebby"), /mixes letters of different scripts/); // Cyrillic о
  assert.equal(accepted("lab-2.b"), "lab-2.b");
});

// ---------------------------------------------------------------- ordinary names

Deno.test("ordinary names in many scripts are accepted as they are", () => {
  const names = [
    "José",
    "Zoë",
    "Łukasz",
    "Ærøskøbing",
    "Дмитрий",
    "Νίκος",
    "李明",
    "さくら",
    "김민수",
    "محمد",
    "דוד",
    "दीपक",
    "राजू", // ends with a vowel sign, a mark
    "தமிழ்",
    "სანდრო",
    "Nguyễn",
    "山田さくら", // Japanese: Han with Hiragana
    "guest12",
    "a-b_c.d",
    "ada",
    "Ada",
    "teacher",
    "x",
    "7",
  ];
  for (const name of names) assert.equal(accepted(name), name);
});

Deno.test("a name is kept in its NFKC form, so decomposed letters count once", () => {
  assert.equal(accepted("Jose\u0301"), "José");
  assert.equal(accepted("Zoe\u0308"), "Zoë");
  assert.equal(nameKey("Jose\u0301"), nameKey("José"));
});

Deno.test("the shape of a name: length, first and last character, allowed characters", () => {
  assert.equal(refused(""), "a name cannot be empty");
  assert.equal(accepted("x".repeat(MAX)), "x".repeat(MAX));
  assert.equal(refused("x".repeat(MAX + 1)), `a name is at most ${MAX} characters`);
  assert.equal(accepted("𝐱".repeat(MAX)), "x".repeat(MAX)); // counted after NFKC
  assert.equal(refused("x".repeat(100_000)), `a name is at most ${MAX} characters`);
  assert.equal(refused("-ada"), "a name must start with a letter or digit");
  assert.equal(refused("ada_"), "a name must end with a letter or digit");
  assert.equal(refused("a b"), '"a b" contains a space; a name is letters, digits and - _ . only');
  assert.equal(refused("a/b"), '"a/b" contains "/"; a name is letters, digits and - _ . only');
  assert.match(refused("ada😀"), /contains "😀"/);
});

Deno.test("names that differ only in case share a key, including ß and final sigma", () => {
  assert.equal(nameKey("Ada"), nameKey("aDA"));
  assert.equal(nameKey("Straße"), nameKey("STRASSE"));
  assert.equal(nameKey("ΟΔΟΣ"), nameKey("οδος"));
  assert.equal(nameKey("οδοσ"), nameKey("οδος"));
  assert.notEqual(nameKey("ada"), nameKey("adb"));
  assert.notEqual(nameKey("bob"), nameKey("bobby"));
});

// ---------------------------------------------------------------- text

Deno.test("cleanText takes out bidi controls and invisible characters", () => {
  assert.equal(cleanText("invoice\u202Efdp.exe"), "invoicefdp.exe");
  assert.equal(cleanText("\u2067evil\u2069 \u200Fx\u200E\u061C"), "evil x");
  assert.equal(cleanText("pay\u200Bpal"), "paypal");
  assert.equal(cleanText("a\u2060b\u2061c\u2064d\uFEFFe\u180Ef"), "abcdef");
  assert.equal(cleanText("a\u3164b\u115Fc\u1160d\uFFA0e\u034Ff\u00ADg"), "abcdefg");
  assert.equal(cleanText("ada\u200Cbob\u200Dcat"), "adabobcat"); // joiners in Latin hide only
  assert.equal(cleanText("x\u{E0041}\u{E0042}y"), "xy"); // tag characters smuggle hidden text
  assert.equal(cleanText("a\uFE0Fb"), "ab");
});

Deno.test("cleanText keeps emoji sequences and the joiners of scripts that need them", () => {
  const kept = [
    "👨\u200D👩\u200D👧", // family
    "❤\uFE0F", // red heart
    "❤\uFE0F\u200D🔥", // heart on fire
    "👩🏽\u200D💻", // woman technologist, medium skin tone
    "🏳\uFE0F\u200D🌈", // rainbow flag
    "1\uFE0F\u20E3", // keycap 1
    "☺\uFE0E", // text presentation
    "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}", // flag of Scotland
    "می\u200Cخواهم", // Persian: I want
    "क्\u200Dष", // Devanagari half form
    "ශ්\u200Dර", // Sinhala conjunct
    "葛\u{E0100}", // ideographic variation sequence
    "ᠠ\u180B", // Mongolian free variation selector
  ];
  for (const text of kept) assert.equal(cleanText(text), text, JSON.stringify(text));
});

Deno.test("cleanText leaves ordinary text alone", () => {
  for (
    const text of [
      "",
      "hello, world",
      "Zoë & José: 3 × 4 = 12 — ok?",
      "  leading and trailing spaces  ",
      "line\nbreaks\tand tabs",
      "日本語のテキスト",
      "مرحبا بالعالم",
      "שלום עולם",
      "😀👍🏽",
    ]
  ) {
    assert.equal(cleanText(text), text);
  }
});

Deno.test("escapeJsonLine escapes C1 controls, separators and bidi controls, losing nothing", () => {
  const value = { text: "a\u0085b\u009B2Jc\u2028d\u2029e\u202Ef\u200Bg\u007Fh" };
  const line = escapeJsonLine(JSON.stringify(value));
  assert.equal(
    line,
    '{"text":"a\\u0085b\\u009b2Jc\\u2028d\\u2029e\\u202ef\\u200bg\\u007fh"}',
  );
  assert.deepEqual(JSON.parse(line), value);
  assert.equal(escapeJsonLine('{"type":"who"}'), '{"type":"who"}');
  const tag = escapeJsonLine(JSON.stringify("\u{E0041}"));
  assert.equal(tag, '"\\udb40\\udc41"');
  assert.equal(JSON.parse(tag), "\u{E0041}");
});

// ---------------------------------------------------------------- properties

/** Characters that make names interesting: lookalikes, invisibles, marks, scripts, widths. */
const TRICKY = [
  ..."abcdeilmnoprstuvxyzADIOS0123456789-_.",
  ..."аеорсхѕіԁАЕОРСΑΒΕΙΟΡαορ", // Cyrillic and Greek lookalikes
  ..."ａｄｍＳ０１𝐚𝐝𝐬𝒜ﬁ", // fullwidth, mathematical, ligature
  "\u0301", // combining acute
  "\u0308", // combining diaeresis
  "\u034F", // combining grapheme joiner
  "\uFE0F",
  "\u17B4",
  "\u180B",
  "\u200B",
  "\u200C",
  "\u200D",
  "\u2060",
  "\uFEFF",
  "\u3164",
  "\u115F",
  "\uFFA0",
  "\u202E",
  "\u2066",
  "\u200F",
  "\u0000",
  "\u0085",
  "\u2028",
  " ",
  ..."李明さくらカナ김민수ㄅ", // CJK
  ..."محمدדוד", // right-to-left
  ..."दीपक्", // Devanagari, with a virama
  "ß",
  "ς",
  "Σ",
  "İ",
  "ı",
  "ǅ",
  "😀",
  "\uD800", // a lone surrogate
  "\uDC00",
];

const trickyChar = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...TRICKY) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
  },
);
/** Strings built from tricky characters, up to a bit past the length limit. */
const anyName = fc.string({ unit: trickyChar, maxLength: MAX + 4 });
/** Names checkName accepts (the tricky ones that pass, and plain ones). */
const goodName = fc.oneof(
  anyName.map((s) => checkName(s, MAX)).filter((r) => r.ok).map((r) =>
    (r as { name: string }).name
  ),
  fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,30}[a-z0-9]$/),
);

const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;
const HIDDEN = /[\p{Cf}\p{Cc}\p{Default_Ignorable_Code_Point}]/u;

Deno.test("property: checkName never throws, and answers a name or a reason", () => {
  check(
    fc.property(fc.oneof(anyName, fc.string({ unit: "binary" })), (wanted) => {
      const result = checkName(wanted, MAX);
      if (result.ok) assert.equal(typeof result.name, "string");
      else assert.ok(result.reason.length > 0);
    }),
    3000,
  );
});

Deno.test("property: an accepted name is NFKC, visible, within limits, and accepted again as is", () => {
  check(
    fc.property(anyName, (wanted) => {
      const result = checkName(wanted, MAX);
      if (!result.ok) return;
      const name = result.name;
      assert.equal(name.normalize("NFKC"), name);
      assert.ok(!HIDDEN.test(name), `hidden character in ${JSON.stringify(name)}`);
      const length = [...name].length;
      assert.ok(length >= 1 && length <= MAX);
      assert.deepEqual(checkName(name, MAX), { ok: true, name });
      assert.ok(!RESERVED_NAMES.some((r) => nameKey(r) === nameKey(name)));
    }),
    3000,
  );
});

Deno.test("property: nameKey is stable and ignores case and width", () => {
  const fullwidth = (s: string) =>
    s.replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0x21 + 0xff01));
  check(
    fc.property(goodName, (name) => {
      const key = nameKey(name);
      assert.equal(nameKey(key), key, "nameKey(nameKey(x)) === nameKey(x)");
      assert.equal(nameKey(name.toUpperCase()), key);
      assert.equal(nameKey(name.toLowerCase()), key);
      assert.equal(nameKey(fullwidth(name)), key);
    }),
    2000,
  );
});

Deno.test("property: nameKey never throws and is stable for any string", () => {
  check(
    fc.property(fc.oneof(anyName, fc.string({ unit: "binary", maxLength: 64 })), (text) => {
      const key = nameKey(text);
      assert.equal(nameKey(key), key);
    }),
    2000,
  );
});

Deno.test("property: cleanText is idempotent, leaves no bidi control, and keeps visible text", () => {
  const text = fc.oneof(
    fc.string({ unit: trickyChar, maxLength: 80 }),
    fc.string({ unit: "binary", maxLength: 80 }),
    fc.string({ unit: "grapheme", maxLength: 40 }),
  );
  check(
    fc.property(text, (text) => {
      const clean = cleanText(text);
      assert.equal(cleanText(clean), clean);
      assert.ok(!BIDI.test(clean), `bidi control left in ${JSON.stringify(clean)}`);
      // Only default-ignorable characters are taken out, and a lone surrogate becomes U+FFFD;
      // everything else stays, in order.
      const visible = (s: string) =>
        s.toWellFormed().replace(/[\p{Default_Ignorable_Code_Point}\uFFF9-\uFFFB]/gu, "");
      assert.equal(visible(clean), visible(text));
      const untouched = text.isWellFormed() &&
        !/[\p{Default_Ignorable_Code_Point}\uFFF9-\uFFFB]/u.test(text);
      if (untouched) assert.equal(clean, text);
    }),
    3000,
  );
});

Deno.test("property: escapeJsonLine keeps the value and leaves no raw control on the line", () => {
  const unsafe = /[\p{Cc}\u2028\u2029\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;
  const value = fc.oneof(
    fc.jsonValue({ stringUnit: "binary", maxDepth: 3 }),
    fc.jsonValue({ stringUnit: trickyChar, maxDepth: 2 }),
    fc.string({ unit: trickyChar }),
  );
  check(
    fc.property(value, (value) => {
      const json = JSON.stringify(value);
      const line = escapeJsonLine(json);
      assert.deepEqual(JSON.parse(line), JSON.parse(json));
      assert.ok(!unsafe.test(line), `raw control in ${line}`);
      assert.ok(!line.includes("\n"));
    }),
    2000,
  );
});

Deno.test("names: marks that only decorate, and rare letters, are refused; Latin accents count as the bare letter", () => {
  const decorated = [
    "admin\u0358",
    "server\u302a",
    "teacher\u0358",
    "teacher\u302e", // a spacing Hangul tone mark
    "teacher\u{1d16d}", // a musical augmentation dot
    "ada\u{16ff0}",
    "\ua7d9am",
    "\u0251da",
  ];
  for (const name of decorated) assert.equal(checkName(name, 32).ok, false, JSON.stringify(name));
  assert.equal(checkName("moderator\u0331", 32).ok, false, "ṟ looks like r: reserved");
  assert.equal(nameKey("José"), nameKey("Jose"));
  assert.equal(nameKey("Lê"), nameKey("Le"));
  // Elsewhere a mark makes another letter: Japanese voicing marks keep names apart.
  assert.notEqual(nameKey("じろう"), nameKey("しろう"));
  assert.notEqual(nameKey("パンス"), nameKey("ハンス"));
  for (const name of ["José", "Nguyễn", "Đặng", "ångström", "दीपक", "محمد", "じろう"]) {
    assert.equal(checkName(name, 32).ok, true, name);
  }
});
