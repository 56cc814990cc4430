// django-celery-beat's periodic task form (its inline script, moved here for the Content-Security-Policy): the
// crontab field's help also says the chosen schedule in words. Text nodes only, never HTML.
(function ($) {
  var data = document.getElementById("readable-crontabs");
  if (!$ || !data) return;
  var readable = JSON.parse(data.textContent);
  var help = document.querySelector(".field-crontab .help");
  var original = help ? help.textContent : "";
  $(".field-crontab_translation").hide();
  $(".field-crontab").change(function () {
    if (!help) return;
    help.textContent = original;
    help.appendChild(document.createElement("br"));
    help.appendChild(document.createTextNode("Translation: " + readable[$("#id_crontab").val()]));
  });
})(window.django && window.django.jQuery);
