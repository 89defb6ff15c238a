//! The localized strings WhatsApp writes into exports, one table per kind
//! and one line per language, and how a message is matched against them.
//!
//! Every table entry is written as the app writes it; entries and messages
//! are compared after [`fold`]ing both: invisible marks dropped, lower case,
//! every kind of quotation mark read as `"` and of apostrophe as `'`, every
//! space as a plain space. In the tables of whole strings a `*` stands for
//! one or more characters. Adding a language is adding a line.

use std::collections::HashSet;
use std::sync::OnceLock;

use regex::Regex;

use super::parse::is_invisible;

/// (language, the strings it writes for one kind of marker).
pub(super) type Table = &'static [(&'static str, &'static [&'static str])];

/// iOS attachments, `<LABEL: FILE>`: the label.
#[rustfmt::skip]
pub(super) const ATTACHED: Table = &[
    ("en", &["attached"]),
    ("de", &["Anhang", "angehängt"]),
    ("es", &["adjunto"]),
    ("pt", &["anexado", "anexo"]),
    ("fr", &["pièce jointe", "fichier joint"]),
    ("it", &["allegato"]),
    ("nl", &["bijgevoegd", "bijlage"]),
];

/// Android attachments, `FILE (LABEL)`: the label.
#[rustfmt::skip]
pub(super) const FILE_ATTACHED: Table = &[
    ("en", &["file attached"]),
    ("de", &["Datei angehängt"]),
    ("es", &["archivo adjunto"]),
    ("pt", &["arquivo anexado", "ficheiro anexado"]),
    ("fr", &["fichier joint"]),
    ("it", &["file allegato"]),
    ("nl", &["bestand bijgevoegd"]),
    ("tr", &["dosya ekli"]),
    ("ru", &["файл прикреплен", "файл прикреплён", "файл добавлен"]),
    ("uk", &["файл додано", "файл прикріплено"]),
    ("cs", &["soubor připojen"]),
    ("pl", &["załączono plik", "plik załączony"]),
    ("id", &["file terlampir"]),
    ("ms", &["fail dilampirkan"]),
];

/// A media file left out of the export, as the whole first line.
#[rustfmt::skip]
pub(super) const MEDIA_OMITTED: Table = &[
    ("en", &["<Media omitted>", "<Video message omitted>", "<* omitted>", "image omitted", "video omitted", "audio omitted", "GIF omitted", "sticker omitted", "Contact card omitted", "document omitted", "video note omitted"]),
    ("de", &["<Medien ausgeschlossen>", "<Medien weggelassen>", "<Videonachricht weggelassen>", "Bild weggelassen", "Video weggelassen", "Audio weggelassen", "GIF weggelassen", "Sticker weggelassen", "Kontaktkarte ausgelassen"]),
    ("es", &["<Multimedia omitido>", "<Archivo omitido>", "imagen omitida", "video omitido", "audio omitido", "sticker omitido", "GIF omitido", "Tarjeta de contacto omitida"]),
    ("pt", &["<Mídia oculta>", "<Arquivo de mídia oculto>", "<Multimédia omitido>", "<Multimédia omitida>", "imagem ocultada", "vídeo ocultado", "áudio ocultado"]),
    ("fr", &["<Médias omis>", "<Fichier omis>", "image absente", "vidéo absente", "audio omis", "sticker omis", "GIF retiré", "Fiche contact manquante", "document manquant"]),
    ("it", &["<Media omessi>", "immagine omessa", "video omesso", "audio omesso", "sticker omesso", "GIF omessa"]),
    ("nl", &["<Media weggelaten>", "afbeelding weggelaten", "video weggelaten", "audio weggelaten"]),
    ("tr", &["<Medya dahil edilmedi>", "<Medya atlandı>", "görüntü dahil edilmedi", "video dahil edilmedi"]),
    ("ru", &["<Без медиафайлов>", "изображение отсутствует", "видео отсутствует", "аудио отсутствует"]),
    ("uk", &["<Без медіафайлів>", "зображення відсутнє", "відео відсутнє", "аудіо відсутнє", "Наклейку не додано"]),
    ("cs", &["<Média vynechána>"]),
    ("pl", &["<Pominięto multimedia>", "<Multimedia pominięte>"]),
    ("id", &["<Media tidak disertakan>", "gambar tidak disertakan", "video tidak disertakan"]),
    ("ms", &["<Media dikecualikan>"]),
    ("th", &["<สื่อถูกข้าม>", "<ไม่รวมสื่อ>"]),
    ("ar", &["<تم استبعاد الوسائط>", "<الوسائط غير مضمنة>"]),
    ("hi", &["<मीडिया के बिना>", "<मीडिया छोड़ दिया गया>"]),
    ("zh", &["<省略影音内容>", "<媒体文件已省略>", "<省略媒體檔案>", "<已省略媒体>"]),
    ("ja", &["<メディアは含まれていません>", "<メディアなし>"]),
    ("ko", &["<미디어 파일 생략>", "<미디어 없음>"]),
];

/// iOS `KIND WORD`: the word that ends a media-omitted line (`image omitted`,
/// `Resume.pdf • 2 pages document omitted`).
#[rustfmt::skip]
pub(super) const OMITTED_WORDS: Table = &[
    ("en", &["omitted"]),
    ("de", &["weggelassen", "ausgelassen"]),
    ("es", &["omitida", "omitido"]),
    ("pt", &["ocultada", "ocultado", "oculta", "oculto", "omitida", "omitido"]),
    ("fr", &["absente", "absent", "omis", "omise", "manquante", "manquant", "retiré"]),
    ("it", &["omessa", "omesso", "omessi"]),
    ("nl", &["weggelaten"]),
    ("tr", &["dahil edilmedi"]),
    ("ru", &["отсутствует", "пропущено", "пропущен"]),
    ("uk", &["відсутнє", "відсутня", "відсутній", "не додано", "пропущено"]),
    ("cs", &["vynechán", "vynechána", "vynecháno"]),
    ("id", &["tidak disertakan"]),
    ("ja", &["は含まれていません", "を省略"]),
    ("hi", &["हटाई गई", "हटाई गयी", "छोड़ा गया", "छोड़ी गई"]),
    ("th", &["ถูกข้าม"]),
    ("zh", &["已省略"]),
    ("ko", &["생략됨"]),
];

/// The same, where the word starts the line.
pub(super) const OMITTED_LEAD_WORDS: Table = &[("ar", &["تم استبعاد"]), ("pl", &["pominięto"])];

/// A deleted message, as its whole text (a final period is optional).
#[rustfmt::skip]
pub(super) const DELETED: Table = &[
    ("en", &["This message was deleted", "You deleted this message", "Message deleted", "This message was deleted by admin *"]),
    ("de", &["Diese Nachricht wurde gelöscht", "Du hast diese Nachricht gelöscht"]),
    ("es", &["Se eliminó este mensaje", "Eliminaste este mensaje", "Este mensaje fue eliminado", "Mensaje eliminado"]),
    ("pt", &["Mensagem apagada", "Esta mensagem foi apagada", "Você apagou esta mensagem", "Apagaste esta mensagem", "Esta mensagem foi eliminada", "Eliminou esta mensagem"]),
    ("fr", &["Ce message a été supprimé", "Vous avez supprimé ce message", "Message supprimé"]),
    ("it", &["Questo messaggio è stato eliminato", "Hai eliminato questo messaggio"]),
    ("nl", &["Dit bericht is verwijderd", "Je hebt dit bericht verwijderd", "U hebt dit bericht verwijderd"]),
    ("tr", &["Bu mesaj silindi", "Bu mesajı sildiniz", "Bu mesajı sildin"]),
    ("ru", &["Данное сообщение удалено", "Сообщение удалено", "Это сообщение удалено", "Вы удалили данное сообщение", "Вы удалили это сообщение"]),
    ("uk", &["Це повідомлення було видалено", "Повідомлення видалено", "Ви видалили це повідомлення"]),
    ("cs", &["Tato zpráva byla smazána", "Tuto zprávu jste smazali", "Smazali jste tuto zprávu"]),
    ("pl", &["Ta wiadomość została usunięta", "Usunięto tę wiadomość", "Usunąłeś tę wiadomość"]),
    ("id", &["Pesan ini telah dihapus", "Pesan ini dihapus", "Anda menghapus pesan ini"]),
    ("ms", &["Mesej ini telah dipadam", "Anda telah memadam mesej ini"]),
    ("vi", &["Tin nhắn này đã bị xóa", "Bạn đã xóa tin nhắn này"]),
    ("th", &["ข้อความนี้ถูกลบแล้ว", "ข้อความนี้ถูกลบ", "คุณลบข้อความนี้แล้ว"]),
    ("ar", &["تم حذف هذه الرسالة", "لقد حذفت هذه الرسالة", "حذفت هذه الرسالة"]),
    ("fa", &["این پیام حذف شد", "شما این پیام را حذف کردید"]),
    ("he", &["הודעה זו נמחקה", "מחקת הודעה זו"]),
    ("hi", &["यह मैसेज डिलीट कर दिया गया है", "आपने यह मैसेज डिलीट किया", "यह संदेश हटा दिया गया था"]),
    ("zh", &["此消息已删除", "你删除了此消息", "你删除了这条消息", "此訊息已被刪除", "此訊息已刪除", "你已刪除此訊息"]),
    ("ja", &["このメッセージは削除されました", "このメッセージを削除しました", "メッセージを削除しました"]),
    ("ko", &["삭제된 메시지입니다", "메시지를 삭제했습니다"]),
];

/// The edited marker at the end of a message, `<…>`: what is inside (a final
/// period is optional).
#[rustfmt::skip]
pub(super) const EDITED: Table = &[
    ("en", &["This message was edited"]),
    ("de", &["Diese Nachricht wurde bearbeitet"]),
    ("es", &["Se editó este mensaje", "Este mensaje se editó", "Mensaje editado"]),
    ("pt", &["Esta mensagem foi editada", "Mensagem editada"]),
    ("fr", &["Ce message a été modifié", "Message modifié"]),
    ("it", &["Questo messaggio è stato modificato", "Messaggio modificato"]),
    ("nl", &["Dit bericht is bewerkt", "Bewerkt"]),
    ("tr", &["Bu mesaj düzenlendi", "Düzenlendi"]),
    ("ru", &["Сообщение изменено", "Это сообщение было изменено", "Изменено"]),
    ("uk", &["Повідомлення змінено", "Це повідомлення було змінено"]),
    ("cs", &["Tato zpráva byla upravena", "Upraveno"]),
    ("pl", &["Ta wiadomość została edytowana", "Edytowano"]),
    ("id", &["Pesan ini telah diedit", "Pesan ini diedit", "Diedit"]),
    ("ms", &["Mesej ini telah disunting"]),
    ("vi", &["Tin nhắn này đã được chỉnh sửa", "Đã chỉnh sửa"]),
    ("th", &["ข้อความนี้ถูกแก้ไขแล้ว", "แก้ไขแล้ว"]),
    ("ar", &["تم تعديل هذه الرسالة", "تم التعديل"]),
    ("fa", &["این پیام ویرایش شد"]),
    ("he", &["הודעה זו נערכה"]),
    ("hi", &["यह मैसेज एडिट किया गया था", "एडिट किया गया"]),
    ("zh", &["此消息已编辑", "已编辑", "此訊息已編輯", "已編輯"]),
    ("ja", &["このメッセージは編集されました", "編集済み"]),
    ("ko", &["이 메시지는 수정되었습니다", "수정됨"]),
];

/// Notices no one types: a message starting so is a system event whoever it
/// is written under (iOS writes them under the chat's name).
#[rustfmt::skip]
pub(super) const NOTICES: Table = &[
    ("en", &["Messages and calls are end-to-end encrypted", "Messages to this group are now secured with end-to-end encryption", "Messages to this chat and calls are now secured with end-to-end encryption", "Messages you send to this chat and calls are now secured with end-to-end encryption", "Messages you send to this group are now secured with end-to-end encryption", "Your security code with ", "This chat is with a business account", "You blocked this contact", "You unblocked this contact"]),
    ("de", &["Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt", "Nachrichten an diese Gruppe sind jetzt mit Ende-zu-Ende-Verschlüsselung geschützt", "Dein Sicherheitscode für ", "Du hast diesen Kontakt blockiert", "Du hast diesen Kontakt freigegeben"]),
    ("es", &["Los mensajes y las llamadas están cifrados de extremo a extremo", "Los mensajes y llamadas están cifrados de extremo a extremo", "Tu código de seguridad con "]),
    ("pt", &["As mensagens e as chamadas são protegidas com a criptografia de ponta a ponta", "As mensagens e chamadas são protegidas com criptografia de ponta a ponta", "Seu código de segurança com ", "O seu código de segurança com "]),
    ("fr", &["Les messages et les appels sont chiffrés de bout en bout", "Votre code de sécurité avec "]),
    ("it", &["I messaggi e le chiamate sono crittografati end-to-end", "Il tuo codice di sicurezza con "]),
    ("nl", &["Berichten en oproepen worden end-to-end versleuteld", "Berichten en gesprekken worden end-to-end versleuteld", "Je beveiligingscode met "]),
    ("tr", &["Mesajlar ve aramalar uçtan uca şifrelidir", "Mesajlar ve aramalar uçtan uca şifrelenmiştir"]),
    ("ru", &["Сообщения и звонки защищены сквозным шифрованием", "Ваш код безопасности с "]),
    ("uk", &["Повідомлення й дзвінки захищено наскрізним шифруванням", "Повідомлення та дзвінки захищено наскрізним шифруванням"]),
    ("cs", &["Zprávy a hovory jsou koncově šifrované", "Zprávy a hovory jsou chráněné koncovým šifrováním"]),
    ("pl", &["Wiadomości i połączenia są szyfrowane end-to-end", "Wiadomości i połączenia są szyfrowane metodą end-to-end"]),
    ("id", &["Pesan dan panggilan terenkripsi secara end-to-end", "Pesan dan panggilan dienkripsi secara end-to-end"]),
    ("ms", &["Mesej dan panggilan disulitkan hujung ke hujung"]),
    ("vi", &["Tin nhắn và cuộc gọi được mã hóa đầu cuối"]),
    ("th", &["ข้อความและการโทรได้รับการเข้ารหัสตั้งแต่ต้นทางถึงปลายทาง"]),
    ("ar", &["الرسائل والمكالمات مشفرة تماماً بين الطرفين", "الرسائل والمكالمات مشفرة بين الطرفين"]),
    ("fa", &["پیام‌ها و تماس‌ها رمزگذاری سرتاسری شده‌اند"]),
    ("he", &["ההודעות והשיחות מוצפנות מקצה לקצה"]),
    ("hi", &["मैसेजेस और कॉल्स एंड-टू-एंड एन्क्रिप्टेड हैं"]),
    ("zh", &["消息和通话已进行端到端加密", "消息和通话均已进行端到端加密", "訊息和通話都經過端對端加密", "訊息和通話均經過端對端加密"]),
    ("ja", &["メッセージと通話はエンドツーエンド暗号化されています"]),
    ("ko", &["메시지와 통화는 종단간 암호화됩니다"]),
];

/// Group events worded so no one would type them (quotes, "this group's"):
/// the whole line (a final period is optional), a system event whoever it
/// is written under.
#[rustfmt::skip]
pub(super) const GROUP_NOTICES: Table = &[
    ("en", &["* created group \"*\"", "* created this group", "* changed the subject to \"*\"", "* changed the subject from \"*\" to \"*\"", "* changed the group name to \"*\"", "* changed the group name from \"*\" to \"*\"", "* changed this group's icon", "* deleted this group's icon", "* changed the group description", "* changed this group's settings *", "* joined using this group's invite link"]),
    ("de", &["* die Gruppe \"*\" erstellt", "* den Gruppennamen zu \"*\" geändert", "* den Gruppennamen von \"*\" zu \"*\" geändert", "* den Betreff zu \"*\" geändert", "* das Gruppenbild geändert", "* die Gruppenbeschreibung geändert"]),
    ("es", &["* creó el grupo \"*\"", "creaste el grupo \"*\"", "* se unió usando el enlace de invitación de este grupo"]),
    ("pt", &["* criou o grupo \"*\"", "* entrou usando o link de convite deste grupo"]),
    ("fr", &["* créé le groupe \"*\""]),
    ("it", &["* creato il gruppo \"*\""]),
    ("nl", &["* groep \"*\" aangemaakt"]),
    ("tr", &["* \"*\" grubunu oluşturdu"]),
    ("ru", &["* создал(а) группу \"*\"", "* создал группу \"*\"", "* создала группу \"*\"", "* создали группу \"*\""]),
    ("id", &["* membuat grup \"*\""]),
];

/// Group events a person might also type ("X added Y", "X left"): a system
/// event only with more evidence (an invisible mark before the text, as iOS
/// writes, or a name that writes nothing else). A final period is optional.
#[rustfmt::skip]
pub(super) const GROUP_EVENTS: Table = &[
    ("en", &["* added *", "* removed *", "* left", "* left the group", "* joined", "* was added", "* changed their phone number *", "* changed to *", "* turned on disappearing messages*", "* turned off disappearing messages*", "* is now an admin", "* are now an admin", "* no longer an admin"]),
    ("de", &["* hat * hinzugefügt", "du hast * hinzugefügt", "* hat * entfernt", "du hast * entfernt", "* hat die Gruppe verlassen", "* ist beigetreten", "* hat zu * gewechselt"]),
    ("es", &["* añadió a *", "* agregó a *", "añadiste a *", "* eliminó a *", "* salió del grupo", "* salió", "* se unió"]),
    ("pt", &["* adicionou *", "* removeu *", "* saiu", "* saiu do grupo", "* entrou"]),
    ("fr", &["* a ajouté *", "vous avez ajouté *", "* a retiré *", "* est parti", "* est partie", "* a quitté *", "* a rejoint *"]),
    ("it", &["* ha aggiunto *", "hai aggiunto *", "* ha rimosso *", "* è uscito", "* è uscita", "* è entrato", "* è entrata"]),
    ("nl", &["* heeft * toegevoegd", "* heeft * verwijderd", "* is vertrokken"]),
    ("tr", &["* ekledi", "* çıkardı", "* ayrıldı", "* katıldı"]),
    ("ru", &["* добавил(а) *", "* добавил *", "* добавила *", "вы добавили *", "* удалил(а) *", "* вышел(а)", "* вышел", "* вышла"]),
    ("id", &["* menambahkan *", "* mengeluarkan *", "* keluar", "* bergabung"]),
];

/// Day periods: (language, AM, PM). `AM`, `pm`, `a.m.`, `p. m.` … are read
/// without a table.
#[rustfmt::skip]
pub(super) const DAY_PERIODS: &[(&str, &str, &str)] = &[
    ("de", "vorm.", "nachm."),
    ("ja", "午前", "午後"),
    ("ko", "오전", "오후"),
    ("zh", "上午", "下午"),
    ("ar", "ص", "م"),
    ("fa", "ق.ظ.", "ب.ظ."),
    ("el", "π.μ.", "μ.μ."),
    ("he", "לפנה״צ", "אחה״צ"),
    ("th", "ก่อนเที่ยง", "หลังเที่ยง"),
    ("vi", "SA", "CH"),
    ("tr", "ÖÖ", "ÖS"),
    ("sv", "fm", "em"),
    ("ms", "PG", "PTG"),
    ("fi", "ap.", "ip."),
    ("af", "vm.", "nm."),
];

/// Words some locales put between the date and the time.
#[rustfmt::skip]
pub(super) const DATE_TIME_WORDS: Table = &[
    ("fi", &["klo"]),
    ("da", &["kl."]),
    ("de", &["um"]),
    ("fr", &["à"]),
    ("pt", &["às"]),
    ("en", &["at"]),
];

/// `s` as the tables are compared: invisible marks dropped, lower case, one
/// kind of quotation mark, apostrophe and space (line breaks kept).
pub(super) fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            c if is_invisible(c) => {}
            '“' | '”' | '„' | '‟' | '«' | '»' | '「' | '」' | '″' | '＂' => {
                out.push('"')
            }
            '‘' | '’' | '‚' | '‛' | '＇' => out.push('\''),
            '\n' => out.push('\n'),
            c if c.is_whitespace() => out.push(' '),
            c if c.is_ascii() => out.push(c.to_ascii_lowercase()),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// `s` without invisible marks or spaces at either end.
pub(super) fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || is_invisible(c))
}

/// Folded strings, whole or with `*` (those as one pattern, built once).
struct Set {
    exact: HashSet<String>,
    globs: Option<Regex>,
}

impl Set {
    fn new(t: Table) -> Set {
        let mut exact = HashSet::new();
        let mut globs = Vec::new();
        for s in entries(t) {
            if s.contains('*') {
                let pieces: Vec<String> = s.split('*').map(regex::escape).collect();
                globs.push(pieces.join(".+"));
            } else {
                exact.insert(s);
            }
        }
        let globs = (!globs.is_empty()).then(|| {
            Regex::new(&format!("(?s)^(?:{})$", globs.join("|")))
                .expect("marker patterns are valid")
        });
        Set { exact, globs }
    }

    fn matches(&self, s: &str) -> bool {
        self.exact.contains(s) || self.globs.as_ref().is_some_and(|g| g.is_match(s))
    }
}

fn entries(t: Table) -> impl Iterator<Item = String> {
    t.iter()
        .flat_map(|(_, v)| v.iter())
        .map(|s| trim(&fold(s)).to_string())
}

struct Compiled {
    attached: Set,
    file_attached: Set,
    media_omitted: Set,
    omitted_words: Vec<String>,
    omitted_lead_words: Vec<String>,
    deleted: Set,
    edited: Set,
    notices: Vec<String>,
    group_notices: Set,
    group_events: Set,
}

fn compiled() -> &'static Compiled {
    static C: OnceLock<Compiled> = OnceLock::new();
    C.get_or_init(|| Compiled {
        attached: Set::new(ATTACHED),
        file_attached: Set::new(FILE_ATTACHED),
        media_omitted: Set::new(MEDIA_OMITTED),
        omitted_words: entries(OMITTED_WORDS).collect(),
        omitted_lead_words: entries(OMITTED_LEAD_WORDS).collect(),
        deleted: Set::new(DELETED),
        edited: Set::new(EDITED),
        // Notices are prefixes: keep a trailing space ("Your security code with ").
        notices: NOTICES
            .iter()
            .flat_map(|(_, v)| v.iter())
            .map(|s| fold(s).trim_start().to_string())
            .collect(),
        group_notices: Set::new(GROUP_NOTICES),
        group_events: Set::new(GROUP_EVENTS),
    })
}

/// `folded` without a final period or full stop.
fn unpunctuated(folded: &str) -> &str {
    trim(folded)
        .trim_end_matches(['.', '。', '!', '।'])
        .trim_end()
}

/// A deleted message's text (folded).
pub(super) fn is_deleted(folded: &str) -> bool {
    folded.len() < 200 && compiled().deleted.matches(unpunctuated(folded))
}

/// A media-omitted marker as the first line (folded). `marked`: the raw line
/// had an invisible mark in its text, as iOS writes before its markers.
pub(super) fn is_media_omitted(folded: &str, marked: bool) -> bool {
    let first = trim(folded.lines().next().unwrap_or(""));
    let c = compiled();
    if c.media_omitted.matches(first) {
        return true;
    }
    if !(marked || first.split(' ').count() <= 3) {
        return false;
    }
    let spaced = |w: &str| w.chars().next().is_some_and(|c| (c as u32) < 0x0530);
    c.omitted_words.iter().any(|w| {
        first.len() > w.len()
            && first.ends_with(w.as_str())
            && (!spaced(w) || first[..first.len() - w.len()].ends_with(' '))
    }) || c
        .omitted_lead_words
        .iter()
        .any(|w| first.len() > w.len() && first.starts_with(w.as_str()))
}

/// The text without the edited marker at its end, if it has one.
pub(super) fn strip_edited(text: &str) -> Option<String> {
    let t = text.trim_end_matches(|c: char| c.is_whitespace() || is_invisible(c));
    let inner = t.strip_suffix('>')?;
    let lt = inner.rfind('<')?;
    let label = fold(&inner[lt + 1..]);
    if !compiled().edited.matches(unpunctuated(&label)) {
        return None;
    }
    Some(
        text[..lt]
            .trim_end_matches(|c: char| c.is_whitespace() || is_invisible(c))
            .to_string(),
    )
}

/// The file an attachment marker names, from the message's first line.
pub(super) fn attachment(first_line: &str) -> Option<String> {
    let t = trim(first_line);
    ios_attachment(t).or_else(|| android_attachment(t))
}

fn ios_attachment(t: &str) -> Option<String> {
    let inner = t.strip_prefix('<')?.strip_suffix('>')?;
    let (label, name) = inner.split_once(':')?;
    let name = trim(name);
    let label = fold(label);
    let known = compiled().attached.matches(trim(&label));
    (looks_like_file(name) && (known || ios_media_name(name))).then(|| name.to_string())
}

fn android_attachment(t: &str) -> Option<String> {
    let inner = t.strip_suffix(')')?;
    let open = inner.rfind('(')?;
    let name = trim(&inner[..open]);
    let label = fold(&inner[open + 1..]);
    let known = compiled().file_attached.matches(trim(&label));
    (looks_like_file(name) && (known || android_media_name(name))).then(|| name.to_string())
}

/// `name.ext`, the extension one to eight letters or digits.
fn looks_like_file(name: &str) -> bool {
    match name.rsplit_once('.') {
        Some((stem, ext)) => {
            !trim(stem).is_empty()
                && (1..=8).contains(&ext.len())
                && ext.chars().all(|c| c.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// iOS names attachments `NNNNNNNN-…` (a sequence number) in every language.
fn ios_media_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 10 && b[..8].iter().all(u8::is_ascii_digit) && b[8] == b'-'
}

/// Android names media `IMG-20210428-WA0001.jpg` in every language.
fn android_media_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 19
        && b[..3].iter().all(u8::is_ascii_uppercase)
        && b[3] == b'-'
        && b[4..12].iter().all(u8::is_ascii_digit)
        && &b[12..15] == b"-WA"
        && b[15].is_ascii_digit()
}

/// Words in every group notice, to skip the patterns for most messages.
const GROUP_WORDS: &[&str] = &["group", "grup", "groep", "grubu"];

/// A notice no one types, or a group event worded so (folded text).
pub(super) fn is_notice(folded: &str) -> bool {
    let c = compiled();
    let t = trim(folded);
    let Some(&t0) = t.as_bytes().first() else {
        return false;
    };
    if c.notices
        .iter()
        .any(|p| p.as_bytes().first() == Some(&t0) && t.starts_with(p.as_str()))
    {
        return true;
    }
    let grouped = t.contains('"')
        || t.contains("gr") && GROUP_WORDS.iter().any(|w| t.contains(w))
        || t.contains("групп");
    one_line(t) && grouped && c.group_notices.matches(unpunctuated(t))
}

/// A group event a person might also type (folded text, one line).
pub(super) fn is_group_event(folded: &str) -> bool {
    let t = trim(folded);
    one_line(t) && compiled().group_events.matches(unpunctuated(t))
}

fn one_line(t: &str) -> bool {
    t.len() < 400 && !t.contains('\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(pattern: &'static str, s: &str) -> bool {
        let t: Table = Box::leak(Box::new([(
            "xx",
            &*Box::leak(Box::new([pattern])) as &[&str],
        )]));
        Set::new(t).matches(s)
    }

    #[test]
    fn globs() {
        assert!(glob("* added *", "bob added alice"));
        assert!(!glob("* added *", " added alice"));
        assert!(!glob("* added *", "bob added "));
        assert!(glob("* left", "bob left"));
        assert!(!glob("* left", "left"));
        assert!(glob(
            "* created group \"*\"",
            "loris created group \"x: y\""
        ));
        assert!(glob("abc", "abc") && !glob("abc", "abcd"));
        assert!(glob("* (a) *", "x (a) y") && !glob("* (a) *", "x a y"));
        assert!(glob("*ä*", "aäb") && !glob("*ä*", "ä"));
    }

    #[test]
    fn deleted_in_many_languages() {
        for t in [
            "This message was deleted",
            "\u{200e}You deleted this message.",
            "Diese Nachricht wurde gelöscht.",
            "Se eliminó este mensaje.",
            "Eliminaste este mensaje",
            "Mensagem apagada",
            "Esta mensagem foi apagada",
            "Ce message a été supprimé.",
            "Questo messaggio è stato eliminato",
            "Bu mesaj silindi",
            "Данное сообщение удалено",
            "Сообщение удалено",
            "Tato zpráva byla smazána",
            "Pesan ini telah dihapus",
            "ข้อความนี้ถูกลบแล้ว",
            "تم حذف هذه الرسالة",
            "यह मैसेज डिलीट कर दिया गया है.",
            "此消息已删除",
            "このメッセージは削除されました。",
            "This message was deleted by admin Bob.",
        ] {
            assert!(is_deleted(&fold(t)), "{t}");
        }
        assert!(!is_deleted(&fold("This message was deleted, I think")));
        assert!(!is_deleted(&fold("hello")));
    }

    #[test]
    fn media_omitted_in_many_languages() {
        for (t, marked) in [
            ("<Media omitted>", false),
            ("<Medien ausgeschlossen>", false),
            ("<Multimedia omitido>", false),
            ("<Mídia oculta>", false),
            ("<Médias omis>", false),
            ("<Media omessi>", false),
            ("<Medya dahil edilmedi>", false),
            ("<Без медиафайлов>", false),
            ("<Média vynechána>", false),
            ("<Media tidak disertakan>", false),
            ("<สื่อถูกข้าม>", false),
            ("<تم استبعاد الوسائط>", false),
            ("<मीडिया के बिना>", false),
            ("<省略影音内容>", false),
            ("<媒体文件已省略>", false),
            ("<メディアは含まれていません>", false),
            ("image omitted", false),
            ("\u{200e}Tarjeta de contacto omitida", true),
            (
                "Resume.pdf • \u{200e}2 pages \u{200e}document omitted",
                true,
            ),
            ("画像は含まれていません", false),
            ("連絡先カードを省略", false),
            ("फ़ोटो हटाई गई", false),
            ("зображення відсутнє", false),
            ("تم استبعاد الصورة", false),
        ] {
            assert!(is_media_omitted(&fold(t), marked), "{t}");
        }
        assert!(!is_media_omitted(&fold("the clause was omitted"), false));
        assert!(!is_media_omitted(&fold("vomitted"), false));
        assert!(!is_media_omitted(&fold("hello"), true));
    }

    #[test]
    fn edited_markers() {
        assert_eq!(
            strip_edited("Changed my mind <This message was edited>").as_deref(),
            Some("Changed my mind")
        );
        assert_eq!(
            strip_edited("Hallo \u{200e}<Diese Nachricht wurde bearbeitet.>").as_deref(),
            Some("Hallo")
        );
        assert_eq!(
            strip_edited("a\nb <THIS MESSAGE WAS EDITED>\u{200e} ").as_deref(),
            Some("a\nb")
        );
        for t in [
            "<Se editó este mensaje.>",
            "<Ce message a été modifié>",
            "<Bu mesaj düzenlendi>",
            "<Сообщение изменено>",
            "<このメッセージは編集されました>",
        ] {
            assert_eq!(strip_edited(t).as_deref(), Some(""), "{t}");
        }
        assert_eq!(strip_edited("a <b>"), None);
        assert_eq!(strip_edited("no marker"), None);
    }

    #[test]
    fn attachments() {
        let a = |t: &str| attachment(t);
        assert_eq!(
            a("\u{200e}<attached: 00000012-PHOTO-2018-01-29-13-05-00.jpg>").as_deref(),
            Some("00000012-PHOTO-2018-01-29-13-05-00.jpg")
        );
        assert_eq!(
            a("< attached: 00000042-PHOTO-2020-06-07-15-13-20.jpg >").as_deref(),
            Some("00000042-PHOTO-2020-06-07-15-13-20.jpg")
        );
        assert_eq!(
            a("<Anhang: 00000003-Bericht.pdf>").as_deref(),
            Some("00000003-Bericht.pdf")
        );
        assert_eq!(a("<angehängt: foto.jpg>").as_deref(), Some("foto.jpg"));
        // An iOS sequence-numbered name under a label no table has.
        assert_eq!(
            a("<adjunto desconocido: 00000007-AUDIO-2022-03-27-21-41-00.opus>").as_deref(),
            Some("00000007-AUDIO-2022-03-27-21-41-00.opus")
        );
        assert_eq!(
            a("IMG-20210428-WA0001.jpg (file attached)").as_deref(),
            Some("IMG-20210428-WA0001.jpg")
        );
        for (name, label) in [
            ("Report.pdf", "Datei angehängt"),
            ("Report.pdf", "archivo adjunto"),
            ("Report.pdf", "arquivo anexado"),
            ("Report.pdf", "fichier joint"),
            ("Report.pdf", "file allegato"),
            ("Report.pdf", "dosya ekli"),
            ("Report.pdf", "файл прикреплен"),
            ("Alex.vcf", "файл добавлен"),
            ("Report.pdf", "soubor připojen"),
            ("Report.pdf", "file terlampir"),
            ("PTT-20220327-WA0003.opus", "any words"),
        ] {
            assert_eq!(
                a(&format!("\u{200e}{name} ({label})")).as_deref(),
                Some(name),
                "{label}"
            );
        }
        assert_eq!(a("see you (file attached)"), None);
        assert_eq!(a("<note: remember>"), None);
        assert_eq!(a("plain text"), None);
    }

    #[test]
    fn notices_and_events() {
        assert!(is_notice(&fold("\u{200e}Messages and calls are end-to-end encrypted. No one outside of this chat can read them.")));
        assert!(is_notice(&fold(
            "\u{200e}\u{200e}Your security code with Elon changed. \u{200e}Tap to learn more."
        )));
        assert!(is_notice(&fold("Alice created group “Traders”")));
        assert!(is_notice(&fold(
            "Alice changed the subject from “A: B” to “C”"
        )));
        assert!(is_notice(&fold("Du hast die Gruppe „Test“ erstellt.")));
        assert!(is_notice(&fold(
            "Les messages et les appels sont chiffrés de bout en bout."
        )));
        assert!(!is_notice(&fold("I created a group for us")));
        assert!(is_group_event(&fold("Alice added Bob")));
        assert!(is_group_event(&fold("Bob left")));
        assert!(is_group_event(&fold("Bob left the group.")));
        assert!(is_notice(&fold("Du hast die Gruppe \"X\" erstellt")));
        assert!(is_group_event(&fold("Alice hat Bob hinzugefügt.")));
        assert!(!is_group_event(&fold("hello there")));
    }
}
